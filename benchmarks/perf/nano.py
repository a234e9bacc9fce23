"""Load time and answer time of the embedded model (a benchmark, not a test).

    python benchmarks/perf/nano.py [--model nano] [--repeats 5]

Loads the model in a fresh process (imports excluded: they are paid once per session) and asks a B3
question about a simulated 64 × 64 cutout. The last line printed is a JSON object with ``load_s``
(targets ≤ 1 s) and ``answer_s`` (≤ 2 s, the median of the repeats), plus ``new_tokens`` and ``answer``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nano")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import numpy as np
    import torch  # noqa: F401  (imports are paid once per session, not per model load)
    import transformers.modeling_utils  # noqa: F401
    import transformers.processing_utils  # noqa: F401
    from astropy.io import fits
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer  # noqa: F401

    from glue_radiollava.core.assistant import Assistant
    from glue_radiollava.core.image import RadioImage
    from glue_radiollava.core.models import load_model

    t0 = time.perf_counter()
    loaded = load_model(args.model)
    load_s = time.perf_counter() - t0
    assistant = Assistant(loaded)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:64]
    data = rng.normal(0, 1e-4, (64, 64)) + 5e-3 * np.exp(-((x - 30) ** 2 + (y - 20) ** 2) / 8.0)
    header = fits.Header({"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN", "CRVAL1": 205.0, "CRVAL2": 55.0,
                          "CRPIX1": 32.5, "CRPIX2": 32.5, "CDELT1": -1.5 / 3600, "CDELT2": 1.5 / 3600})
    image = RadioImage.from_array(data.astype(np.float32), header)
    view = assistant.view(image.cutout_pixels(0, 0, 64, 64))
    times, answer = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        answer = assistant.ask(view, task="b3-radio-galaxy", max_new_tokens=8)
        times.append(time.perf_counter() - t0)
    result = {"load_s": round(load_s, 3), "answer_s": round(statistics.median(times), 3),
              "first_answer_s": round(times[0], 3), "new_tokens": answer.timings["new_tokens"],
              "answer": answer.text, "model": str(loaded.folder)}
    result["targets_met"] = result["load_s"] <= 1.0 and result["answer_s"] <= 2.0
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
