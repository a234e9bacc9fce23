"""Shared fixtures: the real data folder (skip when absent) and a tiny model built once per session."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["GLUE_TESTING"] = "True"   # glue raises instead of opening modal error dialogs
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DATA = Path(os.environ.get("RADIOLLAVA_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real radio data not found at {DATA} (set RADIOLLAVA_DATA to the shared data folder)")
    return DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from glue_radiollava.core.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_dir):
    from glue_radiollava.core.models import load_model

    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="session")
def sim_mosaic(tmp_path_factory):
    """A simulated 512² LoTSS-like mosaic and its truth objects (pixel boxes are edges)."""
    import json

    from training.simulate import config_for, write_simulation

    folder = tmp_path_factory.mktemp("sim") / "mosaic"
    write_simulation(folder, 1, seed=5, cfg=config_for(size=512, mosaic=True), progress=False, overwrite=True)
    truth = json.loads((folder / "objects.json").read_text())["images"][0]["objects"]
    return folder / "images" / "mosaic_000000.fits", truth


@pytest.fixture()
def synthetic_fits(tmp_path):
    """A 200×200 float32 image with a TAN WCS (1.5"/px), a beam and one Gaussian source."""
    import numpy as np
    from astropy.io import fits

    def make(name="synth.fits", shape=(200, 200), dtype=">f4", ctype=("RA---TAN", "DEC--TAN"),
             extra_axes=0, blank=None, crval=(205.0, 55.0)):
        ny, nx = shape
        y, x = np.mgrid[0:ny, 0:nx]
        rng = np.random.default_rng(1)
        data = rng.normal(0, 1e-4, shape) + 5e-3 * np.exp(-((x - 120) ** 2 + (y - 80) ** 2) / 18.0)
        if blank is not None:
            data[blank] = np.nan
        header = fits.Header()
        for i, (ct, cv) in enumerate(zip(ctype, crval), 1):
            header[f"CTYPE{i}"] = ct
            header[f"CRVAL{i}"] = cv
            header[f"CRPIX{i}"] = (nx if i == 1 else ny) / 2 + 0.5
            header[f"CDELT{i}"] = (-1.5 if i == 1 else 1.5) / 3600
        header["BMAJ"], header["BMIN"], header["BPA"] = 6 / 3600, 5 / 3600, 30.0
        header["BUNIT"] = "JY/BEAM"
        arr = data.astype(dtype)
        for k in range(extra_axes):
            arr = arr[None]
            header[f"CTYPE{3 + k}"] = ("FREQ", "STOKES")[k]
            header[f"CRVAL{3 + k}"], header[f"CRPIX{3 + k}"], header[f"CDELT{3 + k}"] = 1.4e9, 1, 1
        path = tmp_path / name
        fits.PrimaryHDU(arr, header=header).writeto(path)
        return path

    return make


class FakeProcessState:
    """accelerate's PartialState as one of two processes sees it (the processes are threads in tests)."""

    def __init__(self, index, barrier):
        self.process_index = index
        self.num_processes = 2
        self.is_main_process = self.is_local_main_process = index == 0
        self.device = "cpu"
        self.barrier = barrier

    def wait_for_everyone(self):
        self.barrier.wait(timeout=120)

    @contextmanager
    def split_between_processes(self, items):
        half = (len(items) + 1) // 2
        yield items[:half] if self.process_index == 0 else items[half:]


@pytest.fixture()
def fake_state():
    """``fake_state(index, barrier)`` → a FakeProcessState (for sharded runs in threads)."""
    return FakeProcessState


# ------------------------------------------------------------------ glue (plugin tests)
@pytest.fixture(scope="session")
def glue_plugins():
    from glue.main import load_plugins

    load_plugins()


@pytest.fixture()
def app(qtbot, tmp_path, monkeypatch, glue_plugins):
    """A real GlueApplication, shown offscreen; a glue error dialog fails the test."""
    from glue.config import settings
    from glue_qt.app.application import GlueApplication

    monkeypatch.chdir(tmp_path)
    settings.AUTOLINK["Astronomy WCS"] = "always_accept"
    application = GlueApplication()
    application.report_error = lambda message, detail: pytest.fail(f"glue error dialog: {message} {detail}")
    application.resize(1400, 900)
    application.show()
    qtbot.waitExposed(application)
    yield application
    dock = getattr(application, "_radiollava_dock", None)
    if dock is not None:
        dock.panel.shutdown()
    application.close()
