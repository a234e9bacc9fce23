"""Benchmark speed: score mode against generate mode, and batch 8 against batch 1.

What it measures
    With the tiny random LLaVA-OneVision (built offline, ``glue_radiollava.core.tiny``) or
    ``--model DIR``, the B3 benchmark (radio galaxy yes/no) on ``--n`` (default 64) simulated
    cutouts (``radiollava simulate --scene mixed``, run as a command: benchmarks never import
    training/). The pictures are rendered once; then the benchmark runner's ``ask`` (processor,
    model, parsing: exactly what ``radiollava bench run`` does per batch) is timed in generate
    and in score mode, each with batch size 1 and 8. Rendering is the same in both modes, so it
    is timed apart, and so is the runner's whole loop at batch 8 (rendering of the next batch
    overlapping the model, as in a run). Every configuration runs ``--repeats`` times (default 3),
    interleaved, after a warm-up batch, and its best rate is kept (the machine is shared: the best
    run is the least disturbed), with ``--threads`` torch threads (default 1).

    Generate mode writes up to ``--max-new-tokens`` (default 32, the benchmark's default) tokens;
    a random model rarely stops early, so it writes all of them. Score mode runs the prompt once
    per picture, then both allowed answers ("Yes", "No") on its cache, and is always parsed.

How to run
    python benchmarks/perf/bench_modes.py [--n 64] [--size 64] [--model DIR] [--max-new-tokens 32]
                                          [--repeats 3] [--threads 1] [--workdir DIR] [--seed 0]

    It prints a short table, then as its last line one JSON object.

Targets
    score_vs_generate ≥ 3 (score mode at least 3× the images/s of generate mode, batch 8) with
    no unparsed answer in score mode; batch8_vs_batch1 (generate mode) > 1: batching pays.

JSON keys
    images, model, max_new_tokens, repeats, threads, images_per_s (mode → batch → images/s of
    model + parsing), unparsed (mode → count, batch 8), render_images_per_s,
    end_to_end_images_per_s (mode → images/s of the whole loop at batch 8),
    end_to_end_score_vs_generate, score_vs_generate (batch 8), score_vs_generate_batch1,
    batch8_vs_batch1 (generate), batch8_vs_batch1_score, targets_met.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def simulate(folder: Path, n: int, size: int, seed: int) -> Path:
    """Simulated cutouts through the command line (the simulator lives in training/)."""
    if not (folder / "labels.json").is_file():
        cmd = [sys.executable, "-m", "glue_radiollava.cli", "simulate", "--out", str(folder), "--n", str(n),
               "--size", str(size), "--scene", "mixed", "--seed", str(seed), "--overwrite", "--json"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return folder


def measure(runner, samples, views, batch: int) -> tuple[float, int]:
    """(images/s, unparsed) of asking the model about already rendered pictures."""
    t0 = time.perf_counter()
    records = []
    for i in range(0, len(samples), batch):
        records += runner.ask(samples[i:i + batch], views[i:i + batch])
    return len(samples) / (time.perf_counter() - t0), sum(not r["parsed"] for r in records)


def measure_end_to_end(runner, samples, batch: int) -> float:
    """images/s of the runner's loop: rendering (in a helper thread) + model + parsing."""
    from benchmarks.runner import run_batches

    t0 = time.perf_counter()
    for _ in run_batches(runner, samples, batch):
        pass
    return len(samples) / (time.perf_counter() - t0)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--size", type=int, default=64, help="simulated cutout size in pixels")
    p.add_argument("--model", help="model folder (default: a tiny random model built offline)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--workdir", help="keep the simulated cutouts and the tiny model here")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    from benchmarks.data import load_one
    from benchmarks.runner import TaskRunner
    from glue_radiollava.core.assistant import Assistant
    from glue_radiollava.core.models import load_model

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory() if not args.workdir else None
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    model_dir = args.model
    if model_dir is None:
        from glue_radiollava.core.tiny import build_tiny

        model_dir = str(work / "tiny") if (work / "tiny" / "config.json").is_file() else \
            str(build_tiny(work / "tiny", seed=args.seed))
    ds = load_one(str(simulate(work / f"sim-{args.n}-{args.size}-{args.seed}", args.n, args.size, args.seed)), "B3")
    samples = ds.samples[:args.n]
    assistant = Assistant(load_model(model_dir))

    runners = {mode: TaskRunner(assistant, ds.bench, mode, [], args.max_new_tokens) for mode in ("generate", "score")}
    views = runners["score"].prepare(samples)          # the pictures (and a warm-up of rendering)
    t0 = time.perf_counter()
    runners["score"].prepare(samples)
    render_rate = len(samples) / (time.perf_counter() - t0)
    configs = [(mode, batch) for mode in runners for batch in (1, 8)]
    for mode, batch in configs:                          # warm-up
        runners[mode].ask(samples[:batch], views[:batch])
    best: dict = {}
    e2e = {mode: 0.0 for mode in runners}
    for _ in range(max(1, args.repeats)):
        for mode, batch in configs:
            ips, bad = measure(runners[mode], samples, views, batch)
            best[(mode, batch)] = (max(ips, best.get((mode, batch), (0.0,))[0]), bad)
        for mode in runners:
            e2e[mode] = max(e2e[mode], measure_end_to_end(runners[mode], samples, 8))
    rates, unparsed = {m: {} for m in runners}, {}
    for (mode, batch), (ips, bad) in best.items():
        rates[mode][batch] = round(ips, 3)
        if batch == 8:
            unparsed[mode] = bad
        print(f"{mode:8s} batch {batch}: {ips:7.2f} images/s (model + parsing), unparsed {bad}")
    print(f"rendering: {render_rate:.1f} images/s; end to end at batch 8 (rendering overlapped): "
          f"generate {e2e['generate']:.1f}, score {e2e['score']:.1f} images/s")
    result = {
        "images": len(samples), "model": model_dir if args.model else "tiny (random)",
        "max_new_tokens": args.max_new_tokens, "repeats": args.repeats, "threads": args.threads,
        "images_per_s": rates, "unparsed": unparsed,
        "render_images_per_s": round(render_rate, 3),
        "end_to_end_images_per_s": {m: round(v, 3) for m, v in e2e.items()},
        "end_to_end_score_vs_generate": round(e2e["score"] / e2e["generate"], 3),
        "score_vs_generate": round(rates["score"][8] / rates["generate"][8], 3),
        "score_vs_generate_batch1": round(rates["score"][1] / rates["generate"][1], 3),
        "batch8_vs_batch1": round(rates["generate"][8] / rates["generate"][1], 3),
        "batch8_vs_batch1_score": round(rates["score"][8] / rates["score"][1], 3),
    }
    result["targets_met"] = result["score_vs_generate"] >= 3 and unparsed["score"] == 0
    print(json.dumps(result))
    if tmp is not None:
        tmp.cleanup()
    return result


if __name__ == "__main__":
    main()
