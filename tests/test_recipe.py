"""The nano recipe (quick version end to end) and the shipped embedded model."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from glue_radiollava.core.models import resources_dir
from training.recipes import NANO, NANO_QUICK

SHIPPED = resources_dir() / "models" / "nano"


@pytest.fixture(scope="module")
def quick_model(tmp_path_factory) -> Path:
    from training.recipes import run_recipe

    root = tmp_path_factory.mktemp("recipe")
    return run_recipe("nano", root / "nano-quick", quick=True, work=root / "work", log=lambda m: None)


def test_quick_recipe_end_to_end(quick_model):
    from glue_radiollava.core.assistant import Assistant
    from glue_radiollava.core.image import RadioImage

    card = json.loads((quick_model / "recipe.json").read_text())
    assert card["quick"] and card["recipe"] == json.loads(json.dumps(asdict(NANO_QUICK)))
    assert card["command"] == "radiollava train recipe nano --out DIR --quick"
    config = json.loads((quick_model / "config.json").read_text())
    assert config["text_config"]["hidden_size"] == NANO_QUICK.text_hidden
    assert config["vision_config"]["patch_size"] == NANO_QUICK.patch_size
    assert card["stage1"]["peculiarity_acc"] > 0.5      # the vision tower learned something
    from glue_radiollava.core.models import load_model
    from glue_radiollava.core.tiny import coordinate_token_ids

    tokenizer = load_model(str(quick_model)).tokenizer
    ids = coordinate_token_ids(tokenizer)                   # one token per box coordinate
    assert ids is not None and tokenizer.encode("0.37", add_special_tokens=False) == [ids[37]]
    data = quick_model.parent / "work" / "data"
    sizes = {json.loads((f.parent.parent / "sim" / f.stem / "objects.json").read_text())["images"][0]["shape"][0]
             for f in data.glob("field-*.json") if not f.name.endswith(".meta.json")}
    assert sizes == {64, 128}                                # cutouts of several sizes and surveys
    records = json.loads((data / "stage2_train.json").read_text())
    assert any(len(r["conversations"]) >= 4 for r in records)          # multi-turn records
    assert any(r["conversations"][1]["value"].startswith("[") for r in records)   # boxes
    if card["real_data"]:                                    # real FIRST/NVSS galaxies, held out by sky position
        assert card["stage1"]["real_val_images"] >= 1
        assert any(r["image"].startswith("real_train_images/") for r in records)
    assistant = Assistant(str(quick_model))
    work = quick_model.parent / "work" / "sim" / "field-lotss-64" / "images"
    parsed = 0
    for path in sorted(work.glob("*.fits"))[:8]:
        view = assistant.view(RadioImage.open(path).cutout_pixels(0, 0, 64, 64))
        parsed += assistant.ask(view, task="b3-radio-galaxy", max_new_tokens=4).parsed.parsed
    assert parsed >= 4                                       # it learned the answer format


def test_coordinate_tokens_round_trip():
    from glue_radiollava.core.parsing import COORDINATE_STRINGS, format_yolo_boxes
    from glue_radiollava.core.tiny import build_tokenizer, coordinate_token_ids

    tok = build_tokenizer(600, coordinate_tokens=True)
    text = format_yolo_boxes([[0.45, 0.1, 0.11, 1.0], [0.0, 0.05, 0.5, 0.99]])
    ids = tok.encode(text, add_special_tokens=False)
    values = [tok.decode([i]) for i in ids if i in set(coordinate_token_ids(tok))]
    assert values == ["0.45", "0.1", "0.11", "1.0", "0.0", "0.05", "0.5", "0.99"]   # longest match wins
    assert tok.decode(ids) == text and len(COORDINATE_STRINGS) == 101
    assert coordinate_token_ids(build_tokenizer(600)) is None


def test_real_galaxies_split_by_sky_position():
    from training.real_galaxies import sky_groups

    rows = [{"ra": 150.0, "dec": 2.0}, {"ra": 150.0 + 1.5 / 60, "dec": 2.0}, {"ra": 150.0 + 3 / 60, "dec": 2.0},
            {"ra": 10.0, "dec": -30.0}, {"ra": 10.0, "dec": -30.0 + 2.5 / 60}]
    g = sky_groups(rows)
    assert g[0] == g[1] == g[2] and g[3] != g[4] and g[0] != g[3]    # chained within 2′, apart beyond


def test_zoomed_out_galaxy_keeps_pixels_sky_and_noise(tmp_path):
    import numpy as np
    from astropy.io import fits
    from astropy.wcs import WCS

    from training.real_galaxies import zoomed_out

    rng = np.random.default_rng(0)
    data = rng.normal(0, 1e-4, (40, 40)).astype(np.float32)
    data[18:22, 10:30] += 5e-3                                # a "galaxy"
    header = WCS({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 20.5, "CRPIX2": 20.5, "CRVAL1": 150.0,
                  "CRVAL2": 2.0, "CDELT1": -0.0005, "CDELT2": 0.0005}).to_header()
    header["BMAJ"] = 0.0015
    fits.PrimaryHDU(data, header).writeto(tmp_path / "g.fits")
    out = zoomed_out(str(tmp_path / "g.fits"), 2.0, 1, tmp_path / "g-x2.fits")
    with fits.open(out) as hdul:
        wide, wcs = hdul[0].data, WCS(hdul[0].header)
    assert wide.shape == (80, 80) and np.array_equal(wide[20:60, 20:60], data)
    assert np.allclose(wcs.pixel_to_world_values(35, 39), WCS(header).pixel_to_world_values(15, 19))
    border = wide[:15].ravel()
    assert 0.7e-4 < border.std() < 1.3e-4                     # noise like the image's own


def test_quick_recipe_is_deterministic_for_its_data(tmp_path):
    from training.recipes import make_data

    a, _ = make_data(NANO_QUICK, tmp_path / "a")
    b, _ = make_data(NANO_QUICK, tmp_path / "b")
    fa = sorted((a / "field-lotss-64" / "images").glob("*.fits"))
    fb = sorted((b / "field-lotss-64" / "images").glob("*.fits"))
    assert [p.read_bytes() for p in fa[:5]] == [p.read_bytes() for p in fb[:5]]


# ---------------------------------------------------------------------------- the shipped model
needs_nano = pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="nano is not shipped in resources/")


@needs_nano
def test_shipped_nano_matches_its_recipe():
    card = json.loads((SHIPPED / "recipe.json").read_text())
    assert not card["quick"] and card["recipe"] == json.loads(json.dumps(asdict(NANO)))
    config = json.loads((SHIPPED / "config.json").read_text())
    assert config["text_config"]["hidden_size"] == NANO.text_hidden
    assert config["text_config"]["num_hidden_layers"] == NANO.text_layers
    assert config["vision_config"]["hidden_size"] == NANO.vision_hidden
    assert config["vision_config"]["patch_size"] == NANO.patch_size
    weights = sum(p.stat().st_size for p in SHIPPED.glob("*.safetensors"))
    assert weights <= 25 * 2 ** 20 and config.get("dtype", config.get("torch_dtype")) == "float16"
    from glue_radiollava.core.models import load_model

    loaded = load_model("nano")
    assert loaded.folder.resolve() == SHIPPED.resolve() and loaded.dtype == "fp32"


@needs_nano
def test_ask_without_model_answers_with_nano(capsys, data_dir):
    from glue_radiollava.cli import main

    code = main(["ask", str(data_dir / "lotss_dr1/P205+55-mosaic.fits"), "--box", "100", "100", "164", "164",
                 "--task", "b3-radio-galaxy", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and Path(result["model"]["folder"]).resolve() == SHIPPED.resolve()
    assert result["parsed"] and result["labels"] in (["Yes"], ["No"])


@needs_nano
@pytest.mark.xfail(strict=True, reason="issue 13 (blocked): nano v3 writes well-formed boxes but not on the "
                   "sources (B7 F1 0.00); this test turns green, and then must lose its mark, with a model that can")
@pytest.mark.parametrize("size", [64, 256])
def test_nano_boxes_land_on_simulated_sources(size, tmp_path):
    """Fixed simulated cutouts (a seed the recipe never uses): label answers parse, and the compact
    boxes match simulated compact sources at IoU ≥ 0.5."""
    from benchmarks.scoring import iou
    from glue_radiollava.core.assistant import Assistant
    from glue_radiollava.core.image import RadioImage
    from training.simulate import config_for, write_simulation

    write_simulation(tmp_path / "sim", 6, seed=99, cfg=config_for(size, "field"), progress=False)
    truth = json.loads((tmp_path / "sim/objects.json").read_text())["images"]
    assistant = Assistant("nano")
    parsed, matched, boxes = 0, 0, 0
    for t in truth:
        view = assistant.view(RadioImage.open(tmp_path / "sim" / t["filepath"]).cutout_pixels(0, 0, size, size))
        for task in ("b1-extended-diffuse", "b3-radio-galaxy", "b4-ring-artefact"):
            parsed += assistant.ask(view, task=task, max_new_tokens=16).parsed.parsed
        answer = assistant.ask(view, task="boxes-compact", max_new_tokens=128)
        compact = [o["pixel_box"] for o in t["objects"] if o["class"] == "COMPACT"]
        for box in answer.boxes:
            boxes += 1
            matched += max((iou(box.pixel_box, c) for c in compact), default=0) >= 0.5
    assert parsed == 3 * len(truth)
    assert boxes >= len(truth) and matched >= 0.5 * boxes, (matched, boxes)


@needs_nano
def test_nano_names_the_fr_class_of_a_real_first_galaxy(data_dir):
    import csv

    from glue_radiollava.core.assistant import Assistant
    from glue_radiollava.core.image import RadioImage

    row = next(csv.DictReader(open(data_dir / "mirabest_first" / "labels.csv")))
    image = RadioImage.open(data_dir / row["file"])
    h, w = image.shape
    answer = Assistant("nano").ask(Assistant("nano").view(image.cutout_pixels(w // 4, h // 4, 3 * w // 4, 3 * h // 4)),
                                   task="b6-fr-class", max_new_tokens=8)
    assert answer.parsed.parsed and answer.labels in (["FR-I"], ["FR-II"]), answer.text
