"""Every score nano's card reports, against its target, from one command:

    python benchmarks/perf/nano_targets.py --model nano --out runs/nano-targets [--n 100]

Simulated test sets come from seed 7 (the recipe never uses it) at 64, 128 and 256 px; the real sets
are the benchmarks' built-in ``mirabest``, ``frdeep``, ``frdeep-nvss`` and ``lotss``. Prints one
table (task, data, score, target, met) and writes it to OUT/targets.json. Runs resume: a finished
benchmark run in OUT is read, not run again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# (task, data, metric, target): the targets; "unparsed" is checked everywhere (≤ 1 %)
SIM_SIZES = (64, 128, 256)
SIM_TARGETS = (("B3", "macro_f1", 0.85), ("B4", "macro_f1", 0.80), ("B1", "macro_f1", 0.60),
               ("B5", "macro_f1", 0.60), ("B7", "COMPACT", 0.60), ("B7", "EXTENDED", 0.50))
REAL_TARGETS = (("B6", "mirabest", "accuracy", 0.85), ("B6", "frdeep", "accuracy", 0.85),
                ("B6", "frdeep-nvss", "accuracy", 0.70), ("B7", "lotss", "COMPACT", 0.60))


def _run(model: str, task: str, data: str, out: Path) -> dict:
    from benchmarks.runner import RunOptions, run

    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    opts = RunOptions(model=model, tasks=task.split(","), data=data, out=str(out), mode="generate",
                      bootstrap=200, progress=False, resume=out.exists(), batch_size=8)
    return run(opts)


def _score(metrics: dict, task: str, metric: str) -> tuple[float, float]:
    """(score, unparsed fraction) of ``task`` in a run's metrics; the score is NaN when the data
    holds no sample of the class ``metric`` names."""
    m = metrics[task]
    value = m[metric] if metric in ("macro_f1", "accuracy") else m["per_class"].get(metric, {}).get("f1")
    return float("nan") if value is None else float(value), float(m["unparsed_fraction"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nano")
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=100, help="simulated cutouts per size (default 100)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-sim", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args(argv)

    from glue_radiollava.core.models import quiet_transformers
    from training.simulate import config_for, write_simulation

    quiet_transformers()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    if not args.skip_sim:
        for size in SIM_SIZES:
            sim = out / f"sim-field-{size}"
            if not (sim / "objects.json").is_file():
                write_simulation(sim, args.n, seed=args.seed, cfg=config_for(size, "field"), progress=False,
                                 overwrite=True)
            metrics = _run(args.model, "B1,B3,B4,B5,B7", str(sim), out / f"run-sim-{size}")
            for task, metric, target in SIM_TARGETS:
                rows.append((task, f"sim {size} px", metric, target, *_score(metrics, task, metric)))
    if not args.skip_real:
        for task, data, metric, target in REAL_TARGETS:
            metrics = _run(args.model, task, data, out / f"run-{data}")
            rows.append((task, data, metric, target, *_score(metrics, task, metric)))
    print(f"{'task':5} {'data':14} {'metric':10} {'score':>6} {'target':>6} {'unparsed':>8}  met")
    for task, data, metric, target, score, unparsed in rows:
        met = score >= target and unparsed <= 0.01
        print(f"{task:5} {data:14} {metric:10} {score:6.3f} {target:6.2f} {unparsed:8.1%}  {'yes' if met else 'NO'}")
    (out / "targets.json").write_text(json.dumps([dict(zip(("task", "data", "metric", "target", "score",
                                                            "unparsed"), r)) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
