"""``radiollava bench``: run, data, report, baseline. Heavy imports happen inside the handlers."""

from __future__ import annotations

import argparse
import json
import sys

from glue_radiollava.core.errors import RadioLlavaError

DATA_HELP = ("reference coarse-label JSON, a simulator output folder, or a built-in real set: "
             "mirabest, mirabest-all, frdeep, frdeep-train, frdeep-test, frdeep-nvss (B6), rgz (B2), lotss (B7)")
FINDERS_INSTALL = "pip install 'glue-radiollava[finders]' (from a clone: pip install -e '.[finders]')"
FINDER_HELP = {
    "islands": "B7 classical source finder: islands above a local noise threshold (the simulator's truth rule)",
    "photutils": "B7 photutils segmentation: Background2D, detect_threshold/detect_sources, SourceCatalog",
    "aegean": "B7 Aegean (AegeanTools): BANE noise, seeded/flooded islands, fitted Gaussian components",
    "pybdsf": "B7 PyBDSF (bdsf): islands, Gaussian fits grouped into sources, deconvolved sizes",
}
ROOT_HELP = "the shared data folder for built-in sets (default: $RADIOLLAVA_DATA or ../shared/data beside the repo)"


def _model_args(p: argparse.ArgumentParser) -> None:
    from glue_radiollava.core.models import ModelSpec

    ModelSpec.add_arguments(p, device_help="cpu, cuda, cuda:1 … (default: CUDA when available; per process "
                                           "under accelerate)")


def add_subcommands(sub) -> None:
    """Add ``bench`` and its sub-subcommands to the ``radiollava`` parser."""
    bench = sub.add_parser("bench", help="benchmarks B1–B7: run, build data sets, report, baselines")
    bsub = bench.add_subparsers(dest="bench_command", required=True)

    p = bsub.add_parser("run", help="ask a model the benchmark questions and score its answers",
                        description="Run B1–B7 on labelled cutouts. Writes predictions.jsonl, metrics.json "
                                    "and run.json in --out. Runs under `accelerate launch` as well.")
    p.add_argument("--task", default="all", help="B1 … B7, a comma-separated list, or all (default: every "
                   "benchmark the data has labels for)")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--data-root", help=ROOT_HELP)
    _model_args(p)
    p.add_argument("--mode", choices=["generate", "score"], default="generate",
                   help="generate then parse (as the paper), or score each allowed answer's likelihood "
                        "(B1: one decision per label; B7 is always generated)")
    p.add_argument("--shots", type=int, default=0, help="few-shot: K labelled example pictures before each question")
    p.add_argument("--shots-from", help="take the examples from this data set (default: from --data, "
                   "then left out of the evaluation)")
    p.add_argument("--batch-size", type=int, default=1, help="pictures per model call (default 1)")
    p.add_argument("--limit", type=int, help="evaluate a seeded random N samples per task (quick looks)")
    p.add_argument("--max-new-tokens", type=int, help="generation length (default 32; 512 for B7 boxes)")
    p.add_argument("--iou", type=float, default=0.5, help="B7: IoU for a box to match the truth (default 0.5)")
    p.add_argument("--classes", help="B7: comma-separated box classes to ask for (default: those in the truth)")
    p.add_argument("--seed", type=int, default=0, help="seed for shots, --limit and bootstrap (default 0)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals (0: none)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; on a busy shared CPU, 1 "
                   "can be many times faster)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (same options)")
    p.add_argument("--name", help="the run's name in reports (default: model and mode)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--out", required=True, help="run folder")
    p.set_defaults(func=cmd_run)

    p = bsub.add_parser("data", help="write a benchmark data set as reference coarse-label JSON")
    p.add_argument("name", help=DATA_HELP)
    p.add_argument("--task", help="the benchmark to write (default: the only one the data has)")
    p.add_argument("--data-root", help=ROOT_HELP)
    p.add_argument("--out", required=True, help="JSON file to write")
    p.set_defaults(func=cmd_data)

    p = bsub.add_parser("report", help="compare runs: a markdown table and bar charts per task")
    p.add_argument("runs", nargs="+", help="run folders (each with metrics.json)")
    p.add_argument("--names", help="comma-separated names for the runs (default: each run's name)")
    p.add_argument("--out", required=True, help="folder for report.md and the PNG charts")
    p.set_defaults(func=cmd_report)

    p = bsub.add_parser("forgetting", help="the paper's forgetting test: standard lmms-eval benchmarks, base vs "
                        "fine-tuned", description="Run lmms-eval tasks (default: the paper's 11) on --base and "
                        "--model through lmms-eval's evaluator; write forgetting.md/.json/.png in --out. "
                        "Standard data sets come from your Hugging Face dataset cache. Needs the eval extra: "
                        "pip install -e '.[eval]'.")
    p.add_argument("--base", required=True, help="the base model: a folder, nano, or model=DIR,adapter=ADAPTER")
    p.add_argument("--model", required=True, help="the fine-tuned model: a folder (merged), a LoRA adapter "
                   "folder, or model=DIR,adapter=ADAPTER")
    p.add_argument("--tasks", default="paper", help="comma-separated lmms-eval tasks (default 'paper': "
                   "ai2d,chartqa,docvqa_val,infovqa_val,mme,mmmu_val,mmstar,ocrbench,seedbench,scienceqa_img,"
                   "realworldqa); radio_b1 … radio_b7 run on --data")
    p.add_argument("--data", help="for radio_bN tasks: " + DATA_HELP)
    p.add_argument("--data-root", help=ROOT_HELP)
    p.add_argument("--limit", type=float, help="documents per task (N, or a fraction below 1)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--names", help="two comma-separated names for the table and chart (default: from the specs)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    p.add_argument("--out", required=True, help="folder for forgetting.md, forgetting.json, forgetting.png")
    p.set_defaults(func=cmd_forgetting)

    p = bsub.add_parser("baseline", help="pure-vision and classical baselines, reported like a run")
    base = p.add_subparsers(dest="baseline", required=True)
    q = base.add_parser("linear-probe", help="frozen vision-tower features + logistic regression (scikit-learn)")
    q.add_argument("--task", required=True, help="B1 … B6, or a comma-separated list")
    q.add_argument("--data", required=True, help="the test set: " + DATA_HELP)
    q.add_argument("--train", help="the train set (default: cross-validated predictions over --data)")
    q.add_argument("--folds", type=int, default=5, help="cross-validation folds without --train (default 5)")
    q.add_argument("--data-root", help=ROOT_HELP)
    _model_args(q)
    q.add_argument("--batch-size", type=int, default=16)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--bootstrap", type=int, default=1000)
    q.add_argument("--name", help="the run's name in reports")
    q.add_argument("--json", action="store_true")
    q.add_argument("--out", required=True, help="run folder")
    q.set_defaults(func=cmd_linear_probe)
    for finder, text in FINDER_HELP.items():
        q = base.add_parser(finder, help=text, description=text + ". Scored like a model's B7 boxes (per-class "
                            "F1 at --iou) into the same run folder." + ("" if finder == "islands" else
                            " Needs the finders extra: " + FINDERS_INSTALL + "."))
        q.add_argument("--data", required=True, help="B7 data: lotss, a simulator folder, JSON with boxes, or a "
                       "published catalogue of the shared data: pybdsf-test (PyBDSF), parkes (Aegean)")
        q.add_argument("--data-root", help=ROOT_HELP)
        q.add_argument("--threshold", type=float, default=3.0,
                       help="island (flood) threshold in local sigma (default 3)")
        q.add_argument("--peak", type=float, default=5.0,
                       help="a source needs a pixel (seed) above this many sigma (default 5)")
        if finder == "photutils":
            q.add_argument("--deblend", action="store_true",
                           help="split blended segments with deblend_sources (default: off; it splits "
                                "extended sources into pieces)")
        q.add_argument("--iou", type=float, default=0.5)
        q.add_argument("--classes", help="comma-separated classes to score (default: those in the truth)")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--bootstrap", type=int, default=1000)
        q.add_argument("--name", help="the run's name in reports")
        q.add_argument("--json", action="store_true")
        q.add_argument("--out", required=True, help="run folder")
        q.set_defaults(func=cmd_finder, finder=finder)


def _classes(text):
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _print_metrics(args, metrics, out) -> int:
    if metrics is None:
        return 0      # not the main process
    if getattr(args, "json", False):
        print(json.dumps(metrics))
        return 0
    from .runner import summary_lines

    for line in summary_lines(metrics):
        print(line)
    print(f"wrote {out}/metrics.json, predictions.jsonl, run.json")
    return 0


def _quiet():
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def cmd_run(args) -> int:
    from .runner import RunOptions, run
    from .tasks import parse_codes

    _quiet()
    codes = "all" if args.task.strip().lower() == "all" else parse_codes(args.task)
    opts = RunOptions(tasks=codes, data=args.data, out=args.out, model=args.model, adapter=args.adapter,
                      quantize=args.quantize, dtype=args.dtype, device=args.device,
                      trust_remote_code=args.trust_remote_code, mode=args.mode,
                      shots=args.shots, shots_from=args.shots_from, batch_size=args.batch_size,
                      limit=args.limit, max_new_tokens=args.max_new_tokens, iou=args.iou,
                      classes=_classes(args.classes), seed=args.seed, bootstrap=args.bootstrap,
                      data_root=args.data_root, resume=args.resume, progress=not args.no_progress,
                      name=args.name, threads=args.threads)
    return _print_metrics(args, run(opts), args.out)


def cmd_data(args) -> int:
    from . import data
    from .tasks import normalise_code

    codes = [normalise_code(args.task)] if args.task else "all"
    sets = data.load(args.name, codes, args.data_root)
    if len(sets) > 1:
        have = ", ".join(d.bench.code for d in sets)
        raise RadioLlavaError(f"{args.name} holds labels for {have}; choose one with --task")
    path = data.write_reference(sets[0], args.out)
    print(f"wrote {len(sets[0])} {sets[0].bench.code} records to {path}")
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    names = _classes(args.names)
    written = write_report(args.runs, args.out, names)
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_forgetting(args) -> int:
    from .forgetting import forgetting

    _quiet()
    names = _classes(args.names)
    if names is not None and len(names) != 2:
        raise RadioLlavaError("--names takes two names: base,model")
    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    summary = forgetting(args.base, args.model, args.out, args.tasks, args.data, args.data_root, limit,
                         args.batch_size, args.overwrite, tuple(names) if names else None,
                         progress=lambda text: print(text, file=sys.stderr))
    for row in summary["rows"]:
        print(f"{row['task']}: {row['metric']} base={row['base']:.4g} model={row['model']:.4g} "
              f"difference={row['difference']:+.4g}")
    print(f"wrote {args.out}/forgetting.md, forgetting.json, forgetting.png")
    return 0


def cmd_linear_probe(args) -> int:
    from .baselines import linear_probe
    from .tasks import parse_codes

    _quiet()
    metrics = linear_probe(parse_codes(args.task), args.data, args.out, train=args.train, folds=args.folds,
                           model=args.model, adapter=args.adapter, quantize=args.quantize, dtype=args.dtype,
                           device=args.device, batch_size=args.batch_size, seed=args.seed,
                           n_boot=args.bootstrap, data_root=args.data_root, name=args.name)
    return _print_metrics(args, metrics, args.out)


def cmd_finder(args) -> int:
    from .baselines import finder_baseline

    options = {"deblend": True} if getattr(args, "deblend", False) else {}
    metrics = finder_baseline(args.finder, args.data, args.out, threshold=args.threshold, peak=args.peak,
                              iou_threshold=args.iou, classes=_classes(args.classes), seed=args.seed,
                              n_boot=args.bootstrap, data_root=args.data_root, name=args.name, **options)
    return _print_metrics(args, metrics, args.out)


cmd_islands = cmd_finder


if __name__ == "__main__":   # python -m benchmarks.cli bench … (the same as radiollava bench …)
    parser = argparse.ArgumentParser(prog="radiollava")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args()
    try:
        sys.exit(ns.func(ns))
    except RadioLlavaError as exc:
        print(f"radiollava: error: {exc}", file=sys.stderr)
        sys.exit(1)
