"""The radio sky simulator: determinism, FITS content, ground truth that matches the pixels, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glue_radiollava.cli import main
from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.image import RadioImage
from glue_radiollava.core.labels import MULTILABELS, PECULIARITY
from glue_radiollava.core.parsing import PictureBox
from glue_radiollava.core.skyregions import map_box
from glue_radiollava.core.transform import Transform
from training import cli as training_cli
from training import simulate as sim
from training.simulate import SimConfig, make_image, write_simulation


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_index_independence(tmp_path):
    cfg = SimConfig(size=64, scene="mixed")
    write_simulation(tmp_path / "a", 6, seed=3, cfg=cfg, progress=False)
    write_simulation(tmp_path / "b", 6, seed=3, cfg=cfg, progress=False, workers=2)
    write_simulation(tmp_path / "c", 3, seed=3, cfg=cfg, progress=False)
    write_simulation(tmp_path / "d", 6, seed=4, cfg=cfg, progress=False)
    a, b, c, d = (_files(tmp_path / k) for k in "abcd")
    assert a == b                                    # same seed, same bytes (also with 2 processes)
    assert all(a[k] == v for k, v in c.items() if k.startswith("images/"))   # image i depends on (seed, i)
    assert a["images/sim_000000.fits"] != d["images/sim_000000.fits"]


def test_fits_files_carry_wcs_beam_unit_and_blank_borders(tmp_path):
    cfg = SimConfig(size=96, p_border=1.0)
    write_simulation(tmp_path, 3, seed=0, cfg=cfg, progress=False)
    truths = json.loads((tmp_path / "objects.json").read_text())["images"]
    for t in truths:
        img = RadioImage.open(tmp_path / t["filepath"])
        assert img.shape == (96, 96) and img.unit == "JY/BEAM" and img.frame == "icrs"
        assert img.beam.major_arcsec == pytest.approx(6.0) and img.beam.minor_arcsec == pytest.approx(6.0)
        assert img.pixel_scale_arcsec == pytest.approx((1.5, 1.5))
        c = img.wcs.pixel_to_world(47.5, 47.5)
        assert (c.ra.deg, c.dec.deg) == pytest.approx((t["center"]["ra"], t["center"]["dec"]), abs=1e-6)
        data = img.read((slice(None), slice(None)))
        assert data.dtype == np.float32
        assert 0 < np.isnan(data).mean() == pytest.approx(t["blank_fraction"], abs=1e-3)
        assert "BORDER" in t["labels"]


def test_every_box_lies_on_its_source():
    """Inside every box the image (noise included) rises above 3σ of the local noise, and the box
    holds the object's measured peak and centroid."""
    checked = 0
    for scene in ("field", "source", "galaxy"):
        for i in range(25 if scene == "field" else 6):
            img = make_image(7, i, SimConfig(size=128, scene=scene))
            snr = img.data / img.rms
            for o in img.truth["objects"]:
                x0, y0, x1, y1 = o["pixel_box"]
                ys, xs = slice(int(y0 + 0.5), int(y1 + 0.5)), slice(int(x0 + 0.5), int(x1 + 0.5))
                inside = snr[ys, xs]
                assert inside.size and np.isfinite(inside).any(), o
                level = np.nanmax(np.abs(inside)) if o["class"] == "SPURIOUS" else np.nanmax(inside)
                assert level > 3.0, (scene, i, o["id"], level)
                assert o["peak_snr"] >= 5.0
                if o["class"] != "SPURIOUS":
                    assert x0 <= o["x"] <= x1 and y0 <= o["y"] <= y1
                checked += 1
    assert checked > 60


def test_labels_follow_the_objects():
    seen = set()
    for i in range(60):
        t = make_image(11, i, SimConfig(size=128, scene="mixed")).truth
        labels = set(t["labels"])
        assert labels <= set(sim.MULTILABELS)
        seen |= labels
        kinds = {o["kind"] for o in t["objects"]}
        assert ("BACKGROUND" in labels) == (not t["objects"])
        assert ("COMPACT" in labels) == ("compact" in kinds)
        assert ("ARTIFACT" in labels) == any(k.startswith("artefact") for k in kinds)
        assert ("RADIO-GALAXY" in labels) == any(o["radio_galaxy"] for o in t["objects"])
        assert t["peculiarity"] == ("PECULIAR" if "PECULIAR" in labels else "COMPLEX" if labels & {
            "EXTENDED", "RADIO-GALAXY", "DIFFUSE", "DIFFUSE-LARGE", "FILAMENT"} else "ORDINARY")
        for o in t["objects"]:
            assert o["class"] in sim.BOX_CLASSES
            assert (o["class"] == "EXTENDED-MULTISLAND") == (o["n_islands"] > 1 and o["class"] != "SPURIOUS")
        if t["scene"] == "source":
            (o,) = t["objects"]
            assert t["smorph"] == o["smorph"] == f"{o['n_islands']}C-{o['n_peaks']}P"
            assert (t["n_components"], t["n_peaks"]) == (o["n_islands"], o["n_peaks"])
        if t["scene"] == "galaxy":
            assert t["fr_class"] in ("FR-I", "FR-II")
    assert seen >= {"COMPACT", "EXTENDED", "RADIO-GALAXY", "DIFFUSE", "ARTIFACT", "BACKGROUND"}


def test_every_smorph_class_can_be_drawn():
    found = {make_image(5, i, SimConfig(size=128, scene="source")).truth["smorph"] for i in range(40)}
    assert found == set(sim.sm.SMORPH_CLASSES)


def test_sky_boxes_agree_with_the_core_transform(tmp_path):
    write_simulation(tmp_path, 4, seed=2, cfg=SimConfig(size=128), progress=False)
    truths = json.loads((tmp_path / "objects.json").read_text())["images"]
    n = 0
    for t in truths:
        img = RadioImage.open(tmp_path / t["filepath"])
        tr = Transform.identity(128, 128, wcs=img.wcs)
        for o in t["objects"]:
            u0, v0, u1, v1 = tr.mosaic_box_to_normalised(*o["pixel_box"])
            sky = map_box(PictureBox(u0, v0, u1, v1, label=o["class"]), tr)
            assert (sky.ra, sky.dec) == pytest.approx((o["sky_box"]["ra"], o["sky_box"]["dec"]), abs=2e-6)
            assert sky.width_arcsec == pytest.approx(o["sky_box"]["width_arcsec"], abs=0.05)
            assert sky.height_arcsec == pytest.approx(o["sky_box"]["height_arcsec"], abs=0.05)
            n += 1
    assert n > 5


def test_label_files_are_in_the_reference_format(tmp_path):
    write_simulation(tmp_path, 12, seed=1, cfg=SimConfig(size=64, scene="mixed"), progress=False)
    for name, vocab in (("labels.json", MULTILABELS), ("peculiarity.json", PECULIARITY),
                        ("smorph.json", sim.sm.SMORPH_CLASSES), ("frclass.json", sim.FR_CLASSES)):
        doc = json.loads((tmp_path / name).read_text())
        assert set(doc) == {"data"} and doc["data"]
        for entry in doc["data"]:
            assert set(entry) == {"sname", "filepaths", "label"}
            assert (tmp_path / entry["filepaths"][0]).is_file()
            labels = entry["label"] if isinstance(entry["label"], list) else [entry["label"]]
            assert set(labels) <= set(vocab)


def test_mosaic_has_a_catalogue(tmp_path):
    from astropy.table import Table

    summary = write_simulation(tmp_path, 1, seed=0, cfg=sim.config_for(512, mosaic=True), progress=False)
    assert summary["objects"] > 20
    cat = Table.read(tmp_path / "mosaic_000000.ecsv", format="ascii.ecsv")
    img = RadioImage.open(tmp_path / "images/mosaic_000000.fits")
    assert img.shape == (512, 512) and len(cat) == summary["objects"]
    wanted = {"RA", "DEC", "Maj", "Min", "PA", "Total_flux", "Peak_flux", "class", "box_ra", "box_width"}
    assert wanted <= set(cat.colnames)
    x, y = img.wcs.world_to_pixel_values(cat["RA"], cat["DEC"])
    assert np.all((x >= cat["x0"] - 1) & (x <= cat["x1"] + 1) & (y >= cat["y0"] - 1) & (y <= cat["y1"] + 1))
    assert set(cat["class"]) <= set(sim.BOX_CLASSES)
    truth = json.loads((tmp_path / "objects.json").read_text())["images"][0]
    assert "MOSAICKING" in truth["labels"]


def test_simulate_command(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "s"), "--n", "3", "--seed", "1", "--size", "64",
                 "--scene", "galaxy", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 3 and (tmp_path / "s/frclass.json").is_file()
    assert main(["simulate", "--out", str(tmp_path / "t"), "--n", "0"]) == 1
    assert "at least one image" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path / "t"), "--n", "1", "--size", "8"]) == 1
    assert "out of range" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path / "t"), "--mosaic", "--scene", "source"]) == 1
    assert main(["simulate", "--out", str(tmp_path / "t"), "--scene", "source", "--survey", "emu",
                 "--size", "64"]) == 1
    assert "use --size 90 or more" in capsys.readouterr().err


def test_output_folder_is_not_clobbered(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(RadioLlavaError, match="not empty"):
        write_simulation(tmp_path, 1, cfg=SimConfig(size=64), progress=False)
    with pytest.raises(RadioLlavaError, match="no objects.json"):
        write_simulation(tmp_path, 1, cfg=SimConfig(size=64), progress=False, overwrite=True)
    sim_dir = tmp_path / "sim"
    write_simulation(sim_dir, 4, cfg=SimConfig(size=64), progress=False)
    write_simulation(sim_dir, 2, cfg=SimConfig(size=64), progress=False, overwrite=True)
    assert sorted(p.name for p in (sim_dir / "images").iterdir()) == ["sim_000000.fits", "sim_000001.fits"]
    assert len(json.loads((sim_dir / "objects.json").read_text())["images"]) == 2


def test_cli_literals_match_the_modules():
    from training import datasets

    assert training_cli.SCENES == sim.SCENES and training_cli.SURVEYS == tuple(sim.SURVEYS)
    assert training_cli.KINDS == datasets.KINDS
