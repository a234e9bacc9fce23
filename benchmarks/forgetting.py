"""The paper's forgetting test (its section 4.3.2): standard lmms-eval benchmarks on a base model and
on a fine-tuned one, the table and a bar chart of the difference.

    radiollava bench forgetting --base BASE --model TUNED --tasks mme,scienceqa_img --out DIR

Each model is any SPEC the core loads: a folder (base or merged), a LoRA adapter folder, ``nano``,
or ``model=DIR,adapter=ADAPTER[,dtype=…,quantize=…]``. Both run through lmms-eval's own evaluator
with the ``radiollava`` model type (``benchmarks/lmms``), so the numbers are lmms-eval's. The standard
data sets are read from the user's Hugging Face dataset cache (``$HF_DATASETS_CACHE``); where one is
missing and the hub cannot be reached, the run stops with one line naming it. The radio tasks
``radio_b1`` … ``radio_b7`` run too, on ``--data``.

``DIR`` gets ``forgetting.json`` (rows: task, metric, base, model, difference), ``forgetting.md``,
``forgetting.png`` and each model's raw lmms-eval results (``base.json``, ``model.json``); none
replaces an existing file unless ``overwrite``.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.files import atomic_write, atomic_write_text, check_outputs

# The paper's 11 standard benchmarks (its appendix B), as lmms-eval names them, and the metric
# each is reported by (lmms-eval's name for it).
PAPER_TASKS = ("ai2d", "chartqa", "docvqa_val", "infovqa_val", "mme", "mmmu_val", "mmstar", "ocrbench",
               "seedbench", "scienceqa_img", "realworldqa")
PRIMARY_METRIC = {"ai2d": "exact_match", "chartqa": "relaxed_overall", "docvqa_val": "anls",
                  "infovqa_val": "anls", "mme": "mme_perception_score", "mmmu_val": "mmmu_acc",
                  "mmstar": "average", "ocrbench": "ocrbench_accuracy", "seedbench": "seed_all",
                  "scienceqa_img": "exact_match", "realworldqa": "exact_match"}
RADIO_METRIC = "macro_f1"
SPEC_KEYS = ("model", "adapter", "quantize", "dtype", "device", "trust_remote_code")
OUTPUTS = ("forgetting.json", "forgetting.md", "forgetting.png", "base.json", "model.json")


def parse_spec(text: str) -> dict:
    """'DIR' or 'model=DIR,adapter=ADAPTER,…' → the RadioLlava model arguments."""
    text = str(text).strip()
    if not text:
        raise RadioLlavaError("an empty model SPEC; give a folder, nano, or model=DIR,adapter=ADAPTER")
    if "=" not in text:
        return {"model": text}
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in SPEC_KEYS:
            raise RadioLlavaError(f"model SPEC {text!r}: {part!r} is not KEY=VALUE with KEY one of "
                                  f"{', '.join(SPEC_KEYS)}")
        out[key] = value.strip()
    if "model" not in out:
        raise RadioLlavaError(f"model SPEC {text!r} has no model=…")
    return out


def parse_tasks(text: str | None) -> list[str]:
    if not text or text.strip().lower() == "paper":
        return list(PAPER_TASKS)
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    if not tasks:
        raise RadioLlavaError("--tasks is empty; give lmms-eval task names or 'paper'")
    return list(dict.fromkeys(tasks))


def _task_config(name: str, data: str | None, data_root: str | None):
    if name.startswith("radio_b"):
        if not data:
            raise RadioLlavaError(f"task {name} needs --data (a reference JSON, a simulator folder or a built-in set)")
        return {"task": name, "dataset_kwargs": {"data": data, "data_root": data_root}}
    return name


def _dataset_message(name: str, task_manager, exc: Exception) -> str:
    path = None
    try:
        path = task_manager._get_config(name).get("dataset_path")
    except Exception:   # a group, or a task lmms-eval cannot describe
        pass
    cache = os.environ.get("HF_DATASETS_CACHE") or os.path.join(
        os.environ.get("HF_HOME", "~/.cache/huggingface"), "datasets")
    first = " ".join(str(exc).split())[:200] or type(exc).__name__
    what = f"its dataset {path}" if path else "its dataset"
    return (f"lmms-eval task {name}: {what} is not in the dataset cache ({cache}) and the hub cannot be "
            f"reached ({type(exc).__name__}: {first}); download it where the network allows, then copy the "
            "cache here or set HF_DATASETS_CACHE")


def metric_values(result: dict) -> dict[str, float]:
    """lmms-eval's ``{'acc,none': 0.5, 'acc_stderr,none': …}`` → ``{'acc': 0.5}`` (numbers only)."""
    out = {}
    for key, value in result.items():
        name = key.split(",")[0]
        if "stderr" in name or name == "alias" or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out.setdefault(name, float(value))
    return out


def primary_metric(task: str, values: dict[str, float]) -> str | None:
    if not values:
        return None
    wanted = RADIO_METRIC if task.startswith("radio_b") else PRIMARY_METRIC.get(task)
    return wanted if wanted in values else next(iter(values))


def evaluate(model_args: dict, tasks: list[str], task_manager, data=None, data_root=None, limit=None,
             batch_size: int = 1, progress=None) -> dict[str, dict]:
    """Load one model and run ``tasks`` through lmms-eval's evaluator → task → lmms-eval's result dict."""
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import get_task_dict

    from .lmms.model import RadioLlava

    configs = {name: _task_config(name, data, data_root) for name in tasks}
    for name, cfg in configs.items():      # each data set is there (or one line says which is not)
        try:
            get_task_dict([copy.deepcopy(cfg)], task_manager)   # lmms-eval pops keys of a config
        except RadioLlavaError:
            raise
        except Exception as exc:
            raise RadioLlavaError(_dataset_message(name, task_manager, exc)) from None
    lm = RadioLlava(batch_size=batch_size, **model_args)
    out = {}
    for name, cfg in configs.items():
        if progress:
            progress(name)
        res = simple_evaluate(model=lm, tasks=[copy.deepcopy(cfg)], task_manager=task_manager, limit=limit,
                              bootstrap_iters=0, log_samples=False, verbosity="WARNING")
        if res is None:
            continue          # not the main process
        results = res.get("results", {})
        out[name] = results.get(name) or next(iter(results.values()), {})
    return out


def rows_of(base: dict[str, dict], tuned: dict[str, dict]) -> list[dict]:
    rows = []
    for task in base:
        b, m = metric_values(base[task]), metric_values(tuned.get(task, {}))
        metric = primary_metric(task, b)
        if metric is None or metric not in m:
            continue
        diff = m[metric] - b[metric]
        rows.append({"task": task, "metric": metric, "base": b[metric], "model": m[metric], "difference": diff,
                     "relative": diff / b[metric] if b[metric] else None})
    return rows


def table_markdown(rows: list[dict], base_name: str, model_name: str) -> str:
    lines = [f"| task | metric | {base_name} | {model_name} | difference | relative |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        rel = f"{100 * r['relative']:+.1f}%" if r["relative"] is not None else "–"
        lines.append(f"| {r['task']} | {r['metric']} | {r['base']:.4g} | {r['model']:.4g} | "
                     f"{r['difference']:+.4g} | {rel} |")
    return "\n".join(lines) + "\n"


def write_chart(path: Path, rows: list[dict], base_name: str, model_name: str) -> Path:
    """The paper's Fig. 4 style: the base model as solid red bars, the fine-tuned model as outlined
    bars, per task; below, the difference (fine-tuned − base), relative to the base where it can be."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r["task"] for r in rows]
    x = np.arange(len(rows))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6, 0.9 * len(rows) + 2), 7), sharex=True)
    top.bar(x - 0.2, [r["base"] for r in rows], 0.4, color="tab:red", label=base_name)
    top.bar(x + 0.2, [r["model"] for r in rows], 0.4, facecolor="none", edgecolor="tab:blue", linewidth=2,
            label=model_name)
    top.set_ylabel("score (each task's metric)")
    top.legend(frameon=False)
    top.set_title("standard benchmarks: base vs fine-tuned")
    rel = [100 * r["relative"] if r["relative"] is not None else 0.0 for r in rows]
    bottom.bar(x, rel, 0.6, color=["tab:blue" if v >= 0 else "tab:red" for v in rel])
    bottom.axhline(0, color="black", linewidth=0.8)
    bottom.set_ylabel("difference (% of base)")
    bottom.set_xticks(x, names, rotation=30, ha="right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return path


def forgetting(base: str, model: str, out: str | Path, tasks: str | None = None, data: str | None = None,
               data_root: str | None = None, limit: float | None = None, batch_size: int = 1,
               overwrite: bool = False, names: tuple[str, str] | None = None, progress=None) -> dict:
    """Run the forgetting test; returns the summary written to ``forgetting.json``."""
    from .lmms import TASKS_DIR, register_model, require_lmms_eval

    require_lmms_eval()
    base_args, model_args = parse_spec(base), parse_spec(model)
    task_names = parse_tasks(tasks)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RadioLlavaError(f"--out {out} is a file; give a folder")
    if out.is_dir():
        check_outputs({f"--out {name}": out / name for name in OUTPUTS}, overwrite=overwrite)
    register_model()
    from lmms_eval.tasks import TaskManager

    task_manager = TaskManager("WARNING", include_path=str(TASKS_DIR))
    known = set(task_manager.all_tasks)
    unknown = [t for t in task_names if t not in known]
    if unknown:
        raise RadioLlavaError(f"unknown lmms-eval task {', '.join(unknown)}; `lmms-eval --tasks list` lists them "
                              f"(the paper's: {','.join(PAPER_TASKS)})")
    base_name, model_name = names or (_name(base_args), _name(model_args))
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for role, args in (("base", base_args), ("model", model_args)):
        results[role] = evaluate(args, task_names, task_manager, data, data_root, limit, batch_size,
                                 (lambda t, r=role: progress(f"{r}: {t}")) if progress else None)
        atomic_write_text(out / f"{role}.json", json.dumps({"spec": args, "results": results[role]},
                                                           indent=1, default=str) + "\n")
    rows = rows_of(results["base"], results["model"])
    summary = {"base": {"name": base_name, "spec": base_args}, "model": {"name": model_name, "spec": model_args},
               "tasks": task_names, "limit": limit, "rows": rows}
    atomic_write_text(out / "forgetting.md", table_markdown(rows, base_name, model_name))
    write_chart(out / "forgetting.png", rows, base_name, model_name)
    atomic_write_text(out / "forgetting.json", json.dumps(summary, indent=1) + "\n")
    return summary


def _name(args: dict) -> str:
    name = Path(str(args["model"]).rstrip("/")).name or str(args["model"])
    if args.get("adapter"):
        name += "+" + Path(str(args["adapter"]).rstrip("/")).name
    return name
