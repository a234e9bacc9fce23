"""Classical source finders (core/finders.py) as B7 baselines and scan detectors.

The recall/precision floors are set under what each finder measured on the 512² simulated mosaic of
the ``sim_mosaic`` fixture (seed 5, 35 objects; whole image, IoU ≥ 0.5, class-agnostic):
islands 0.80/0.68, photutils 0.86/0.65, aegean 0.80/0.72, pybdsf 0.74/0.62; the compact/extended
split agreed with the truth on 100%, 100%, 79% and 73% of the matched sources.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.finders import ellipse_box, find_in_image, make_finder

PACKAGES = {"photutils": "photutils", "aegean": "AegeanTools", "pybdsf": "bdsf"}
FLOORS = {  # finder: (recall, precision, compact/extended agreement on matched sources)
    "islands": (0.75, 0.6, 0.95),
    "photutils": (0.8, 0.6, 0.95),
    "aegean": (0.75, 0.65, 0.7),
    "pybdsf": (0.68, 0.55, 0.65),
}


def _need(finder):
    if finder in PACKAGES:
        pytest.importorskip(PACKAGES[finder], reason=f"the {finder} finder needs the finders extra: "
                            "pip install -e '.[finders]'")


def _score(found, truth):
    from benchmarks.scoring import match

    pairs = match([list(f.box) for f in found], [o["pixel_box"] for o in truth], 0.5)
    agree = [(found[i].label == "COMPACT") == (truth[j]["class"] == "COMPACT") for i, j, _ in pairs]
    return len(pairs) / len(truth), len(pairs) / max(len(found), 1), float(np.mean(agree))


def test_ellipse_box_grows_to_the_isophote():
    # a round 4 px FWHM source at S/N 12: the 3σ contour lies at FWHM/2 × sqrt(log2(12/3)) = 2 × sqrt(2)
    x0, y0, x1, y1 = ellipse_box(50.0, 40.0, 4.0, 4.0, 0.0, 12.0, 3.0)
    assert x1 - x0 == pytest.approx(4 * np.sqrt(2)) and (x0 + x1) / 2 == pytest.approx(50)
    assert y1 - y0 == pytest.approx(4 * np.sqrt(2))
    # faint: never smaller than the FWHM ellipse; PA 0 (north) stretches y; clipped to the image
    x0, y0, x1, y1 = ellipse_box(0.2, 40.0, 10.0, 2.0, 0.0, 2.0, 3.0, shape=(80, 80))
    assert (y1 - y0) == pytest.approx(10) and x1 == pytest.approx(1.2) and x0 == -0.5


@pytest.mark.parametrize("finder", list(FLOORS))
def test_finder_recovers_the_simulated_sources(finder, sim_mosaic):
    from glue_radiollava.core.image import RadioImage

    _need(finder)
    path, truth = sim_mosaic
    image = RadioImage.open(path)
    found, beam = find_in_image(make_finder(finder), image)
    image.close()
    assert beam.major == pytest.approx(4.0)                      # 6" beam on 1.5" pixels
    recall, precision, agree = _score(found, truth)
    r, p, a = FLOORS[finder]
    assert recall > r and precision > p and agree > a, (finder, recall, precision, agree)
    assert {f.label for f in found} <= {"COMPACT", "EXTENDED"}


def test_a_missing_finder_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "bdsf", None)               # import bdsf → ImportError
    with pytest.raises(RadioLlavaError, match=r"pybdsf finder needs the bdsf package.*\[finders\]"):
        make_finder("pybdsf")
    with pytest.raises(RadioLlavaError, match="unknown source finder 'sextractor'"):
        make_finder("sextractor")


def test_baseline_command_without_the_package_is_one_line(monkeypatch, sim_mosaic, tmp_path, capsys):
    from glue_radiollava.cli import main

    monkeypatch.setitem(sys.modules, "AegeanTools", None)
    folder = sim_mosaic[0].parent.parent
    assert main(["bench", "baseline", "aegean", "--data", str(folder), "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install" in err and not (tmp_path / "a").exists()


def test_photutils_baseline_writes_a_run_scored_like_the_model(sim_mosaic, tmp_path):
    _need("photutils")
    from glue_radiollava.cli import main

    folder, out = sim_mosaic[0].parent.parent, tmp_path / "photutils"
    assert main(["bench", "baseline", "photutils", "--data", str(folder), "--bootstrap", "20",
                 "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())["B7"]
    assert m["mode"] == "photutils" and m["per_class"]["COMPACT"]["recall"] > 0.85
    assert m["provenance"]["detector"] == "photutils" and "detect_sources" in m["provenance"]["rule"]
    rec = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert rec[0]["answers"]["COMPACT"]["boxes"] and rec[0]["truth_boxes"]
    assert main(["bench", "baseline", "photutils", "--data", str(folder), "--out", str(out)]) == 1


def test_published_catalogues_become_truth(data_dir):
    from benchmarks.baselines import catalogue_reference

    ref = catalogue_reference("pybdsf-test", data_dir)
    boxes = ref["data"][0]["boxes"]
    assert len(boxes) == 43 and {b["label"] for b in boxes} == {"COMPACT", "EXTENDED"}
    assert all(-0.5 <= b["pixel_box"][0] < b["pixel_box"][2] <= 128.5 for b in boxes)
    parkes = catalogue_reference("parkes", data_dir)["data"][0]["boxes"]
    assert len(parkes) == 51


def test_pybdsf_recovers_its_own_published_catalogue(data_dir, tmp_path):
    """PyBDSF on its test image against the catalogue PyBDSF wrote for it: graded against itself."""
    _need("pybdsf")
    from benchmarks.baselines import finder_baseline

    m = finder_baseline("pybdsf", "pybdsf-test", tmp_path / "p", n_boot=0, data_root=data_dir)["B7"]
    assert m["per_class"]["COMPACT"]["f1"] > 0.8 and m["per_class"]["EXTENDED"]["precision"] > 0.8
    assert (tmp_path / "p" / "truth.json").is_file()


def test_aegean_on_the_parkes_field(data_dir, tmp_path):
    _need("aegean")
    from benchmarks.baselines import finder_baseline

    m = finder_baseline("aegean", "parkes", tmp_path / "a", n_boot=0, data_root=data_dir)["B7"]
    assert m["per_class"]["COMPACT"]["f1"] > 0.75


def test_finder_detector_through_the_scan(sim_mosaic):
    _need("photutils")
    from benchmarks.scoring import match
    from glue_radiollava.core.finders import FinderDetector, pixel_beam
    from glue_radiollava.core.image import RadioImage
    from glue_radiollava.core.scan import plan_tiles, scan

    path, truth = sim_mosaic
    image = RadioImage.open(path)
    detector = FinderDetector("photutils", pixel_beam(image))
    result = scan(image, detector, plan_tiles(image.shape, 64, 0.25), None, batch_size=32)
    pairs = match([list(d.box.pixel_box) for d in result.detections], [o["pixel_box"] for o in truth], 0.5)
    assert len(pairs) / len(truth) > 0.7 and len(pairs) / len(result.detections) > 0.5
    assert {d.box.label for d in result.detections} <= {"COMPACT", "EXTENDED"}
    assert detector.describe()["detector"] == "photutils"


def test_scan_command_with_a_finder(sim_mosaic, tmp_path, capsys):
    _need("photutils")
    from astropy.table import Table

    from glue_radiollava.cli import main

    path, truth = sim_mosaic
    out = tmp_path / "cat.ecsv"
    assert main(["scan", str(path), "--detector", "photutils", "--tile", "128", "--quiet", "--out", str(out)]) == 0
    t = Table.read(out)
    assert len(t) > 0.6 * len(truth) and set(t["task"]) == {"photutils"} and t.meta["MODEL"] == "photutils"
    capsys.readouterr()
    assert main(["scan", str(path), "--detector", "photutils", "--task", "boxes-compact",
                 "--out", str(tmp_path / "b.ecsv")]) == 1
    assert "drop --task" in capsys.readouterr().err
    assert main(["scan", str(path), "--out", str(tmp_path / "c.ecsv")]) == 1
    assert "--task is needed with the model" in capsys.readouterr().err
