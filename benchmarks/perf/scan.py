"""Survey scan of a simulated mosaic: speed, recall and precision, model against the source finders.

What it measures
    The simulator writes a LoTSS-like mosaic (default 4096², 1.5"/px, seed 11) and its truth
    catalogue (every simulated object with its pixel box). ``core.scan.scan`` then runs over the
    whole mosaic twice with the same tiles (default 64 px, overlap 0.25) and the same merging:

    - ``model``: the assistant (default the embedded nano) asked the box tasks (default
      boxes-compact and boxes-extended) on every tile, batched;
    - ``islands``, ``photutils``, ``aegean``, ``pybdsf``: the source finders of
      ``glue_radiollava.core.finders`` (3σ islands holding a 5σ peak, each finder's own noise and
      COMPACT/EXTENDED rule) as the detector, run on every tile like the model; a finder whose
      package is missing is skipped with the install line (``pip install -e '.[finders]'``).

    Each merged catalogue is matched one-to-one to the truth at IoU ≥ 0.5 in mosaic pixels
    (``benchmarks.scoring.match``, greedy by IoU), class-agnostic: ``recall`` = matched truth /
    truth objects, ``precision`` = matched boxes / boxes. Per-class recall is given for the
    classes the detector names; ``compact_split_agreement``: on the matched pairs, how often
    COMPACT-or-not agrees with the truth. ``tiles_per_s`` counts tiles with data per second of scanning
    (model loading and the simulation are not counted).

How to run
    python benchmarks/perf/scan.py [--size 4096] [--tile 64] [--overlap 0.25] [--model nano]
                                   [--task boxes-compact,boxes-extended] [--batch-size 16]
                                   [--workdir DIR] [--seed 11]
                                   [--detectors model,islands,photutils,aegean,pybdsf]

    It prints one line per detector, then as its last line one JSON object:
    {"model": {"tiles_per_s", "recall", "precision", "boxes", "found_before_merge", ...},
     "islands": {...}, "photutils": {...}, …, "skipped": {name: why}, "truth_objects", "tiles", "mosaic_px", "tile_px", "overlap"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def evaluate(result, truth: list[dict], iou: float = 0.5) -> dict:
    from benchmarks.scoring import match

    pred = [list(d.box.pixel_box) for d in result.detections]
    true = [o["pixel_box"] for o in truth]
    pairs = match(pred, true, iou)
    out = {"boxes": len(pred), "found_before_merge": result.found, "matched": len(pairs),
           "recall": round(len(pairs) / len(true), 4) if true else None,
           "precision": round(len(pairs) / len(pred), 4) if pred else 0.0}
    matched_truth = {j for _, j, _ in pairs}
    per_class = {}
    for cls in sorted({str(d.box.label) for d in result.detections}):
        idx = [j for j, o in enumerate(truth) if o["class"] == cls]
        if idx:
            per_class[cls] = round(sum(j in matched_truth for j in idx) / len(idx), 4)
    out["recall_per_class"] = per_class
    # compact/extended split on the matched pairs: truth COMPACT against everything else
    agree = [(str(result.detections[i].box.label) == "COMPACT") == (truth[j]["class"] == "COMPACT")
             for i, j, _ in pairs]
    out["compact_split_agreement"] = round(sum(agree) / len(agree), 4) if agree else None
    return out


def run_one(name, image, detector, tiles, batch_size, truth) -> dict:
    from glue_radiollava.core.scan import scan

    t0 = time.perf_counter()
    result = scan(image, detector, tiles, None, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    scanned = result.tiles_done - result.tiles_blank
    out = {"tiles_per_s": round(scanned / seconds, 3), "seconds": round(seconds, 2), **evaluate(result, truth)}
    print(f"{name}: {out['tiles_per_s']} tiles/s, recall {out['recall']}, precision {out['precision']}, "
          f"{out['boxes']} boxes ({out['found_before_merge']} before merging)", flush=True)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--model", default="nano")
    ap.add_argument("--task", default="boxes-compact,boxes-extended")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workdir", help="keep the simulated mosaic here (default: a temporary folder)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--detectors", default="model,islands,photutils,aegean,pybdsf",
                    help="comma-separated: model and/or source finders (default: all)")
    args = ap.parse_args(argv)
    wanted = [d.strip() for d in args.detectors.split(",") if d.strip()]

    from glue_radiollava.core.assistant import Assistant
    from glue_radiollava.core.errors import RadioLlavaError
    from glue_radiollava.core.finders import FinderDetector, make_finder, pixel_beam
    from glue_radiollava.core.image import RadioImage
    from glue_radiollava.core.models import quiet_transformers
    from glue_radiollava.core.scan import AssistantDetector, plan_tiles
    from training.simulate import sample_mosaic

    quiet_transformers()
    tmp = None if args.workdir else tempfile.TemporaryDirectory()
    folder = Path(args.workdir or tmp.name) / f"mosaic-{args.seed}-{args.size}"
    path = sample_mosaic(folder, seed=args.seed, size=args.size)
    truth = json.loads((folder / "objects.json").read_text())["images"][0]["objects"]
    image = RadioImage.open(path)
    tiles = plan_tiles(image.shape, args.tile, args.overlap)
    beam = pixel_beam(image)

    results, skipped = {}, {}
    for name in wanted:
        if name == "model":
            detector = AssistantDetector(Assistant(args.model), args.task.split(","))
            results["model"] = {"name": args.model, "tasks": args.task,
                                **run_one(args.model, image, detector, tiles, args.batch_size, truth)}
            continue
        try:
            finder = make_finder(name)
        except RadioLlavaError as exc:
            skipped[name] = str(exc)
            print(f"{name}: skipped: {exc}", flush=True)
            continue
        results[name] = run_one(name, image, FinderDetector(finder, beam), tiles, args.batch_size, truth)
    image.close()
    results["skipped"] = skipped
    results.update(truth_objects=len(truth), tiles=len(tiles), mosaic_px=args.size, tile_px=args.tile,
                   overlap=args.overlap, seed=args.seed)
    print(json.dumps(results))
    if tmp is not None:
        tmp.cleanup()
    return results


if __name__ == "__main__":
    main()
