"""Responsiveness of the glue panel while the model generates (a benchmark, not a test).

With the tiny model generating 64 tokens in the assistant panel of a real (offscreen) glue window,
a QTimer probe ticking every 5 ms records how late each tick fires: the longest gap beyond the
interval is the longest event-loop stall the person would feel. Target: ``max_stall_ms`` < 100.

    python benchmarks/perf/gui.py [--tokens 64] [--image FITS]

The last line printed is a JSON object: ``max_stall_ms``, ``p99_stall_ms``, ``answer_s``,
``new_tokens``, ``load_s``, ``ticks``, ``target_met``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("GLUE_TESTING", "True")

INTERVAL_MS = 5


def default_image() -> Path:
    shared = Path(__file__).resolve().parents[3] / "shared" / "data" / "lotss_dr1" / "P205+55-mosaic.fits"
    if shared.is_file():
        return shared
    import numpy as np
    from astropy.io import fits

    path = Path(tempfile.mkdtemp()) / "noise.fits"
    header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 205.0, "CRVAL2": 55.0,
                          "CRPIX1": 200, "CRPIX2": 200, "CDELT1": -4e-4, "CDELT2": 4e-4})
    fits.PrimaryHDU(np.random.default_rng(0).normal(size=(400, 400)).astype("f4"), header).writeto(path)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--image", type=Path, default=None)
    args = parser.parse_args(argv)

    from glue.core.data_factories import load_data
    from glue.main import load_plugins
    from glue_qt.app.application import GlueApplication
    from glue_qt.viewers.image import ImageViewer
    from qtpy import QtCore

    from glue_radiollava import settings
    from glue_radiollava.core.tiny import build_tiny
    from glue_radiollava.qt.panel import get_panel

    model_dir = build_tiny(Path(tempfile.mkdtemp()) / "tiny")
    load_plugins()
    app = GlueApplication()
    data = load_data(str(args.image or default_image()))
    app.data_collection.append(data)
    viewer = app.new_data_viewer(ImageViewer, data=data)
    app.resize(1400, 900)
    app.show()
    panel = get_panel(app)
    panel.model_edit.setText(str(model_dir))
    panel.quantize_combo.setCurrentText("")
    settings.set("RADIOLLAVA_MAX_NEW_TOKENS", args.tokens)
    ny, nx = data.shape[-2:]
    panel.set_region(viewer, (nx // 4, ny // 4, 3 * nx // 4, 3 * ny // 4), "benchmark region")

    loop = QtCore.QEventLoop()
    panel.model_ready.connect(lambda _: loop.quit())
    t0 = time.perf_counter()
    panel.load_model()
    loop.exec_()
    load_s = time.perf_counter() - t0

    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000 - INTERVAL_MS)
        last[0] = now

    probe = QtCore.QTimer()
    probe.setTimerType(QtCore.Qt.PreciseTimer)
    probe.timeout.connect(tick)
    result = {}
    panel.answer_ready.connect(lambda answer: (result.setdefault("answer", answer), loop.quit()))
    t0 = time.perf_counter()
    probe.start(INTERVAL_MS)
    last[0] = time.perf_counter()
    panel.ask(question="Describe the image in detail, source by source.")
    loop.exec_()
    probe.stop()
    answer_s = time.perf_counter() - t0
    panel.shutdown()
    app.close()

    gaps.sort()
    stall = max(0.0, gaps[-1]) if gaps else float("nan")
    p99 = max(0.0, gaps[int(0.99 * (len(gaps) - 1))]) if gaps else float("nan")
    answer = result.get("answer")
    print(f"{len(gaps)} probe ticks while generating; longest stall {stall:.1f} ms (p99 {p99:.1f} ms)")
    print(json.dumps({"max_stall_ms": round(stall, 1), "p99_stall_ms": round(p99, 1),
                      "answer_s": round(answer_s, 3), "new_tokens": answer.timings["new_tokens"] if answer else 0,
                      "load_s": round(load_s, 3), "ticks": len(gaps), "target_met": stall < 100}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
