"""The run folder of a benchmark run, as `bench run`, `bench baseline`, `bench report` and the
lmms-eval wrapper read and write it: ``predictions.jsonl`` (one record per answer, appended as
they come; per-rank files under accelerate), ``metrics.json`` and ``run.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from glue_radiollava.core.files import atomic_write_text, read_jsonl

PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
RUN = "run.json"


def write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, default=jsonable) + "\n")


def jsonable(v):
    import numpy as np

    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (set, tuple)):
        return list(v)
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def read_predictions(folder: Path) -> dict[tuple[str, str], dict]:
    """(task, id) → record, from predictions.jsonl and any per-rank files (a torn last line is skipped)."""
    out = {}
    files = [folder / PREDICTIONS] + sorted(folder.glob("predictions.rank*.jsonl"))
    for path in files:
        if path.is_file():
            for rec in read_jsonl(path):      # a line cut short by an interruption is left out
                out[(rec["task"], rec["id"])] = rec
    return out


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("glue-radiollava", "torch", "transformers", "accelerate", "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def write_predictions(out: Path, records: list[dict]) -> Path:
    """The run's one predictions file, in order; the per-rank parts it gathers are removed."""
    path = atomic_write_text(out / PREDICTIONS, "".join(json.dumps(r, default=jsonable) + "\n" for r in records))
    for part in out.glob("predictions.rank*.jsonl"):
        part.unlink()
    return path
