"""Fine-tuning throughput and memory for full, lora and qlora (a benchmark, not a test).

Builds a mid-size synthetic LLaVA-OneVision offline (about 16 M parameters: hidden 384, 6 layers in
the vision tower and the LLM, 64 px pictures) and a small LLaVA dataset, then trains each method for
a fixed number of steps, each in its own process so that peak memory is its own:

    python benchmarks/perf/train.py [--steps 8] [--batch 4]

The last line printed is a JSON object: for each method ``samples_per_s`` and ``peak_mb`` (peak
resident memory of the training process), plus ``parameters`` and the settings.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ("full", "lora", "qlora")


def make_dataset(folder: Path, n: int = 16) -> Path:
    import numpy as np
    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"images/{i}.png")
        records.append({"id": f"r{i}", "image": f"images/{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nDo you see any likely radio galaxy with an extended "
                                       "morphology in the image?\nAnswer concisely: Yes or No."},
            {"from": "gpt", "value": "Yes" if i % 2 else "No"},
            {"from": "human", "value": "Please provide the bounding box coordinates of all compact sources "
                                       "present in the image."},
            {"from": "gpt", "value": "[0.45, 0.32, 0.05, 0.04], [0.7, 0.1, 0.12, 0.2]"}]})
    path = folder / "train.json"
    path.write_text(json.dumps(records))
    return path


def worker(method: str, model: str, data: str, out: str, steps: int, batch: int) -> None:
    from training.finetune import load_config, train

    config = load_config(None, dict(base=model, data=data, out=out, method=method, max_steps=steps,
                                    per_device_batch_size=batch, gradient_accumulation_steps=1,
                                    gradient_checkpointing=False, logging_steps=steps, save_steps=10 ** 6,
                                    learning_rate=1e-4))
    start = time.perf_counter()
    train(config)
    seconds = time.perf_counter() - start
    card = json.loads((Path(out) / "training_card.json").read_text())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"method": method, "seconds": seconds, "samples_per_s": steps * batch / seconds,
                      "peak_mb": peak_mb, "trainable": card["trainable"], "parameters": card["parameters"]}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        method, model, data, out, steps, batch = args.worker
        worker(method, model, data, out, int(steps), int(batch))
        return 0

    from glue_radiollava.core.tiny import build_tiny

    root = Path(tempfile.mkdtemp(prefix="radiollava-train-bench-"))
    model = build_tiny(root / "model", hidden=384, layers=6, image_size=64, patch_size=8)
    data = make_dataset(root / "data")
    results, params = {}, None
    for method in METHODS:
        run = subprocess.run([sys.executable, __file__, "--worker", method, str(model), str(data),
                              str(root / method), str(args.steps), str(args.batch)],
                             capture_output=True, text=True)
        if run.returncode != 0:
            results[method] = {"error": run.stderr.strip().splitlines()[-1][:300]}
            continue
        r = json.loads(run.stdout.strip().splitlines()[-1])
        results[method] = {"samples_per_s": round(r["samples_per_s"], 2), "peak_mb": round(r["peak_mb"]),
                           "trainable": r["trainable"]}
        if method == "full":
            params = r["parameters"]          # the base model (LoRA adds its adapters on top)
        print(f"{method:>5}: {r['samples_per_s']:.2f} samples/s, peak {r['peak_mb']:.0f} MB, "
              f"{r['trainable']:,} trainable of {r['parameters']:,}")
    print(json.dumps({**results, "parameters": params, "steps": args.steps, "batch": args.batch,
                      "note": "training time includes the fixed cost of the Trainer setup"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
