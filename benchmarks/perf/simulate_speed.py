"""Simulator speed: time to write N simulated cutouts (default 10,000 of 128×128 px) to disk.

What it measures
    The wall time of ``training.simulate.write_simulation(folder, N, seed, config)``, i.e. exactly
    what ``radiollava simulate --out DIR --n N --size S`` does: every image simulated (noise,
    sources, artefacts, borders, ground-truth measurement), written as a FITS file, and at the end
    labels.json, peculiarity.json, smorph.json, frclass.json and objects.json. Imports are warmed up
    on one image first (not timed). The output goes to a temporary folder that is removed at the end
    (unless ``--keep``).

How to run
    python benchmarks/perf/simulate_speed.py [--n 10000] [--size 128] [--scene field] [--workers 1]
                                             [--seed 0] [--workdir DIR] [--keep]

    It prints a short summary, then as its last line one JSON object.

Target
    10,000 cutouts of 128×128 in under two minutes (``target_s`` 120) on the project's 2-core
    machine, with one process (``--workers 1``).

JSON keys
    images, size, scene, workers, seconds (wall), ms_per_image, images_per_s, objects, bytes_written,
    target_s, target_met.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--scene", default="field")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", help="write here instead of a temporary folder")
    p.add_argument("--keep", action="store_true", help="keep the simulated files")
    args = p.parse_args(argv)

    from training.simulate import config_for, make_image, write_simulation

    cfg = config_for(args.size, args.scene)
    make_image(args.seed, 0, cfg)                      # warm up imports (scipy, astropy.wcs)
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="simspeed-"))
    out = root / "sim"
    if out.exists():
        shutil.rmtree(out)                             # only the benchmark's own subfolder
    try:
        t0 = time.perf_counter()
        summary = write_simulation(out, args.n, args.seed, cfg, workers=args.workers, progress=False)
        seconds = time.perf_counter() - t0
        written = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
            if not args.workdir:
                shutil.rmtree(root, ignore_errors=True)
    result = {"images": args.n, "size": args.size, "scene": args.scene, "workers": args.workers,
              "seconds": round(seconds, 2), "ms_per_image": round(1000 * seconds / args.n, 3),
              "images_per_s": round(args.n / seconds, 1), "objects": summary["objects"],
              "bytes_written": written, "target_s": 120,
              # the target is defined for 10,000 cutouts of 128² px
              "target_met": bool(seconds < 120) if (args.n, args.size) == (10_000, 128) else None}
    print(f"simulated and wrote {args.n} images of {args.size}² px in {seconds:.1f} s "
          f"({result['ms_per_image']} ms each, {result['images_per_s']} per second, "
          f"{written / 2 ** 20:.0f} MiB)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
