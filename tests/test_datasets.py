"""Dataset builders: every input kind → LLaVA JSON + pictures; answers parse back through the core."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from glue_radiollava.cli import main
from glue_radiollava.core.batching import Scores
from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.image import RadioImage
from glue_radiollava.core.parsing import PictureBox, format_yolo_boxes, parse_answer, parse_boxes
from glue_radiollava.core.profiles import get_profile, render
from glue_radiollava.core.tasks import get_task
from glue_radiollava.core.transform import Transform
from training.captions import Selection, filter_captions
from training.datasets import BuildOptions, assign_splits, build_dataset, parse_split
from training.llava_format import dataset_stats, validate
from training.qa import question_index, reading_order
from training.simulate import SimConfig, config_for, write_simulation

CAESAR = ("SPURIOUS", "COMPACT", "EXTENDED", "EXTENDED-MULTISLAND", "FLAGGED")


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    write_simulation(folder, 24, seed=5, cfg=SimConfig(size=96, scene="mixed"), progress=False)
    return folder


@pytest.fixture(scope="module")
def truths(sim_dir):
    return {t["sname"]: t for t in json.loads((sim_dir / "objects.json").read_text())["images"]}


def build(kind, source, out, **kw):
    return build_dataset(BuildOptions(kind, str(source), str(out), progress=False, **kw), log=lambda m: None)


def turns_of(record):
    c = record["conversations"]
    index = question_index()
    return {index.get(q["value"].replace("<image>\n", "", 1)): a["value"] for q, a in zip(c[0::2], c[1::2])}


def expected_boxes(truth, cls, transform):
    boxes = []
    for o in truth["objects"]:
        if o["class"] == cls or (cls == "RADIO-GALAXY" and o["radio_galaxy"]):
            u0, v0, u1, v1 = transform.mosaic_box_to_normalised(*o["pixel_box"])
            boxes.append(PictureBox(max(u0, 0), max(v0, 0), min(u1, 1), min(v1, 1)))
    return reading_order(boxes)


def assert_same_boxes(got, want, tol=0.0051):
    assert len(got) == len(want)
    for g, w in zip(reading_order(list(got)), want):
        assert g.to_yolo() == pytest.approx(w.to_yolo(), abs=tol)


def test_sim_build_answers_parse_back_to_the_truth(sim_dir, truths, tmp_path):
    report = build("sim", sim_dir, tmp_path / "sim.json", split="0.6,0.2,0.2")
    assert report["images"] == 24 and report["skipped"] == 0
    meta = json.loads((tmp_path / "sim.meta.json").read_text())
    assert meta["profile"]["name"] == "radio-llava"
    seen_ids, seen_images = set(), set()
    n_boxes = 0
    for split in ("train", "val", "test"):
        path = tmp_path / f"sim_{split}.json"
        assert validate(path) == []
        for rec in json.loads(path.read_text()):
            assert rec["id"] not in seen_ids and rec["image"] not in seen_images   # no leakage
            seen_ids.add(rec["id"])
            seen_images.add(rec["image"])
            assert meta["records"][rec["id"]]["split"] == split
            truth = truths[rec["id"]]
            tr = Transform(**meta["records"][rec["id"]]["transform"])
            answers = turns_of(rec)
            labels = set(truth["labels"])
            assert answers["b1-extended-diffuse"] == (", ".join(
                x for x in ("EXTENDED", "DIFFUSE", "DIFFUSE-LARGE") if x in labels) or "NONE")
            assert answers["b3-radio-galaxy"] == ("Yes" if "RADIO-GALAXY" in labels else "No")
            assert answers["b4-ring-artefact"] == ("Yes" if "ARTIFACT" in labels else "No")
            border = answers.get("border", answers.get("blank-border"))
            assert border == ("Yes" if "BORDER" in labels else "No")
            assert answers["b5-peculiarity"] == truth["peculiarity"]
            assert answers.get("b2-source-morphology") == truth["smorph"]
            assert answers.get("b6-fr-class") == truth["fr_class"]
            for name in ("boxes-compact", "boxes-extended", "boxes-extended-multisland", "boxes-spurious",
                         "boxes-radio-galaxy"):
                task = get_task(name)
                parsed = parse_answer(answers[name], task)
                assert parsed.parsed and parsed.problem is None, answers[name]
                want = expected_boxes(truth, task.box_class, tr)
                assert_same_boxes(parsed.boxes, want)
                if not want:
                    assert answers[name] == task.negative_answer
                for b in parsed.boxes:          # back to pixels: within rounding of the truth
                    X0, Y0, X1, Y1 = tr.box_to_mosaic(b.x0, b.y0, b.x1, b.y1)
                    assert any(np.allclose([X0, Y0, X1, Y1], o["pixel_box"], atol=96 * 0.0101)
                               for o in truth["objects"])
                n_boxes += len(parsed.boxes)
    assert seen_ids == set(truths) and n_boxes > 30


def test_pictures_are_the_core_rendering_also_north_up(sim_dir, truths, tmp_path):
    for profile in ("radio-llava", "sky-view"):
        build("sim", sim_dir, tmp_path / f"{profile}.json", profile=profile, limit=6)
        meta = json.loads((tmp_path / f"{profile}.meta.json").read_text())
        for rec in json.loads((tmp_path / f"{profile}.json").read_text()):
            img = RadioImage.open(sim_dir / truths[rec["id"]]["filepath"])
            view = render(img.cutout_pixels(0, 0, 96, 96), get_profile(profile))
            png = np.asarray(Image.open(tmp_path / rec["image"]))
            assert np.array_equal(png, view.array)
            assert meta["records"][rec["id"]]["transform"]["flip_y"] == (profile == "sky-view")
            parsed = parse_boxes(turns_of(rec)["boxes-compact"])
            assert_same_boxes(parsed.boxes, expected_boxes(truths[rec["id"]], "COMPACT", view.transform))


def test_build_is_deterministic(sim_dir, tmp_path):
    for k in ("a", "b"):
        (tmp_path / k).mkdir()
        build("sim", sim_dir, tmp_path / k / "d.json", split="0.5,0.5", seed=3, phrasing="mixed", limit=10)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files and all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
                         for f in files if not f.name.endswith("meta.json"))


def test_coarse_label_files_in_every_scheme(sim_dir, tmp_path):
    expect = {"labels.json": "b1-extended-diffuse", "smorph.json": "b2-source-morphology",
              "frclass.json": "b6-fr-class", "peculiarity.json": "b5-peculiarity"}
    for name, task in expect.items():
        report = build("labels", sim_dir / name, tmp_path / f"{name}.out.json")
        assert report["skipped"] == 0 and report["questions"][task] == report["images"] > 0
        for rec in json.loads((tmp_path / f"{name}.out.json").read_text()):
            parsed = parse_answer(turns_of(rec)[task], get_task(task))
            assert parsed.parsed


def test_bad_labels_and_missing_images_are_reported(sim_dir, tmp_path):
    doc = json.loads((sim_dir / "labels.json").read_text())
    doc["data"][0]["label"] = ["COMPACT", "GALAXY-CLUSTER"]
    doc["data"][1]["filepaths"] = ["images/nowhere.fits"]
    for entry in doc["data"]:
        entry["filepaths"] = [str(sim_dir / p) if "nowhere" not in p else p for p in entry["filepaths"]]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    report = build("labels", bad, tmp_path / "out.json")
    assert report["skipped"] == 2 and report["images"] == len(doc["data"]) - 2
    problems = json.loads((tmp_path / "out.meta.json").read_text())["problems"]
    assert any(doc["data"][0]["sname"] in p and "GALAXY-CLUSTER" in p for p in problems)
    assert any(doc["data"][1]["sname"] in p and "missing image file" in p for p in problems)
    with pytest.raises(RadioLlavaError, match=doc["data"][0]["sname"]):
        build("labels", bad, tmp_path / "out2.json", on_error="stop")


def _norm(box, n=96):
    """Pixel edges → normalised [x_center, y_center, width, height] (edge -0.5 ↔ 0)."""
    x0, y0, x1, y1 = box
    return [((x0 + x1) / 2 + 0.5) / n, ((y0 + y1) / 2 + 0.5) / n, (x1 - x0) / n, (y1 - y0) / n]


def _yolo_folder(sim_dir, truths, folder, n=5):
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    written = {}
    for i, (name, t) in enumerate(list(truths.items())[:n]):
        if i == 0:   # one picture as PNG, the others FITS
            view = render(RadioImage.open(sim_dir / t["filepath"]).cutout_pixels(0, 0, 96, 96))
            view.picture.save(folder / "images" / f"{name}.png")
        else:
            shutil.copy(sim_dir / t["filepath"], folder / "images" / f"{name}.fits")
        lines = []
        for o in t["objects"]:
            x0, y0, x1, y1 = o["pixel_box"]
            xc, yc, w, h = _norm(o["pixel_box"])
            lines.append(f"{CAESAR.index(o['class'])} {xc:.6f} {yc:.6f} {w:.6f} {h:.6f}")
        (folder / "labels" / f"{name}.txt").write_text("\n".join(lines) + "\n")
        written[name] = t
    return written


def test_yolo_folder(sim_dir, truths, tmp_path):
    written = _yolo_folder(sim_dir, truths, tmp_path / "yolo")
    names = list(written)
    (tmp_path / "yolo/labels/orphan.txt").write_text("1 0.5 0.5 0.1 0.1\n")
    (tmp_path / "yolo/labels" / f"{names[1]}.txt").write_text("9 0.5 0.5 0.1 0.1\n")
    (tmp_path / "yolo/labels" / f"{names[2]}.txt").write_text("1 1.2 0.5 0.1 0.1\n")
    report = build("yolo", tmp_path / "yolo", tmp_path / "y.json")
    assert report["images"] == len(names) - 2 and report["skipped"] == 3
    assert report["skipped_by_reason"] == {"missing image file": 1, "box outside its image": 1,
                                           "label outside the scheme": 1}
    problems = "\n".join(json.loads((tmp_path / "y.meta.json").read_text())["problems"])
    assert "orphan: missing image file" in problems
    assert f"{names[1]}: " in problems and "class 9 is outside" in problems
    assert f"{names[2]}: " in problems and "outside its image" in problems
    records = {r["id"]: r for r in json.loads((tmp_path / "y.json").read_text())}
    tr = Transform.identity(96, 96)
    for name in (names[0], names[3], names[4]):
        answers = turns_of(records[name])
        assert set(answers) >= {"boxes-compact", "boxes-spurious", "b4-ring-artefact"}
        assert_same_boxes(parse_boxes(answers["boxes-compact"]).boxes,
                          expected_boxes(written[name], "COMPACT", tr), tol=0.0052)
        assert answers["b4-ring-artefact"] == ("Yes" if "ARTIFACT" in written[name]["labels"] else "No")


def test_rgcat_json(sim_dir, truths, tmp_path):
    items = []
    label_of = {"fr1": "FR-I", "fr2": "FR-II", "x-shaped": "Pec", "multi": "FR-x", "extended": "R"}
    for name, t in list(truths.items())[:8]:
        objs = []
        for o in t["objects"]:
            norm = _norm(o["pixel_box"])
            if o["radio_galaxy"]:
                objs.append({"label": label_of.get(o["kind"], "C"), "bbox_norm": norm,
                             "label_caesar": o["class"], "bbox_norm_caesar": norm})
        items.append({"filename": str(sim_dir / t["filepath"]), "objs": objs})
    items.append({"filename": str(sim_dir / "images/sim_000000.fits"),
                  "objs": [{"label": "XRB", "bbox_norm": [0.5] * 4}]})
    (tmp_path / "rgcat.json").write_text(json.dumps(items))
    report = build("rgcat", tmp_path / "rgcat.json", tmp_path / "r.json")
    assert report["images"] == 8 and report["skipped"] == 1
    for rec in json.loads((tmp_path / "r.json").read_text()):
        t = truths[rec["id"]]
        answers = turns_of(rec)
        rg = [o for o in t["objects"] if o["radio_galaxy"]]
        extended = any(label_of.get(o["kind"], "C") != "C" for o in rg)
        assert answers["b3-radio-galaxy"] == ("Yes" if extended else "No")
        assert len(parse_boxes(answers["boxes-radio-galaxy"]).boxes) == len(rg)
        frs = [label_of[o["kind"]] for o in rg if o["kind"] in ("fr1", "fr2", "multi")]
        assert answers.get("b6-fr-class") == (frs[0] if len(frs) == 1 and frs[0] != "FR-x" else None)


def test_lotss_mosaic_and_catalogue(data_dir, tmp_path):
    from astropy.table import Table

    mosaic = data_dir / "lotss_dr1/P205+55-mosaic.fits"
    cat_path = data_dir / "lotss_dr1/lotss_dr1_sources_near_cutouts.csv"
    report = build("mosaic", mosaic, tmp_path / "l.json", catalogue=str(cat_path), split="0.7,0.3")
    assert report["images"] == 9 and report["skipped"] == 0
    assert any("outside P205+55-mosaic.fits" in n for n in report["notes"])   # the P218+55 sources
    meta = json.loads((tmp_path / "l.meta.json").read_text())
    cat = Table.read(cat_path, format="ascii.csv")
    img = RadioImage.open(mosaic)
    cx, cy = img.wcs.world_to_pixel_values(cat["RA"], cat["DEC"])
    data = img.read((slice(None), slice(None)))
    n = 0
    for split in ("train", "test"):
        assert validate(tmp_path / f"l_{split}.json") == []
        for rec in json.loads((tmp_path / f"l_{split}.json").read_text()):
            m = meta["records"][rec["id"]]
            tr = Transform(**m["transform"])
            x0, y0, x1, y1 = m["pixel_box"]
            tile = data[y0:y1, x0:x1]
            rms = 1.4826 * np.median(np.abs(tile - np.median(tile)))
            answers = turns_of(rec)
            assert answers.get("border", answers.get("blank-border")) == "No"
            assert "b1-extended-diffuse" not in answers
            for name in ("boxes-compact", "boxes-extended"):
                parsed = parse_answer(answers[name], get_task(name))
                assert parsed.parsed
                for b in parsed.boxes:
                    X0, Y0, X1, Y1 = tr.box_to_mosaic(b.x0, b.y0, b.x1, b.y1)
                    tol = 128 * 0.0101               # 2-decimal rounding of centre and size
                    assert x0 - 0.5 - tol <= X0 < X1 <= x1 - 0.5 + tol
                    assert y0 - 0.5 - tol <= Y0 < Y1 <= y1 - 0.5 + tol
                    assert np.any((cx >= X0 - 1) & (cx <= X1 + 1) & (cy >= Y0 - 1) & (cy <= Y1 + 1))
                    inside = data[int(np.floor(Y0 + 0.5)):int(np.ceil(Y1 + 0.5)),
                                  int(np.floor(X0 + 0.5)):int(np.ceil(X1 + 0.5))]
                    assert inside.max() > 3 * rms          # flux inside the box above the noise
                    n += 1
    assert n >= 15
    bad = tmp_path / "nopos.csv"
    bad.write_text("name,x,y\na,1,2\n")
    with pytest.raises(RadioLlavaError, match="no RA/Dec columns"):
        build("mosaic", mosaic, tmp_path / "x.json", catalogue=str(bad))
    with pytest.raises(RadioLlavaError, match="--catalogue"):
        build("mosaic", mosaic, tmp_path / "x.json")


def test_simulated_mosaic_with_its_catalogue(tmp_path):
    write_simulation(tmp_path / "m", 1, seed=2, cfg=config_for(384, mosaic=True), progress=False)
    report = build("mosaic", tmp_path / "m/images/mosaic_000000.fits", tmp_path / "m.json",
                   catalogue=str(tmp_path / "m/mosaic_000000.ecsv"))
    assert report["images"] == 9
    assert {"boxes-compact", "boxes-radio-galaxy"} <= set(report["questions"])
    stats = dataset_stats([tmp_path / "m.json"])
    assert stats["unparsed_answers"] == {} and stats["boxes"]["COMPACT"] > 5
    with pytest.raises(RadioLlavaError, match="--from mosaic"):
        build("sim", tmp_path / "m", tmp_path / "n.json")


def test_tiny_boxes_grow_to_a_size_the_answer_can_say():
    from training.datasets import picture_boxes
    from training.readers import Record, Source

    rec = Record("r", Path("x.fits"), sources=[Source(("COMPACT",), (150.0, 0.0, 151.0, 1.0)),
                                                Source(("COMPACT",), (10.0, 10.0, 40.0, 20.0))])
    compact = picture_boxes(rec, Transform.identity(300, 300), (300, 300))["COMPACT"]
    text = format_yolo_boxes(compact)
    parsed = parse_boxes(text)
    assert parsed.problem is None and all(b.valid for b in parsed.boxes)
    assert parsed.boxes[0].to_yolo() == pytest.approx([0.5017, 0.005, 0.01, 0.01], abs=0.006)
    assert compact[1].to_yolo() == pytest.approx([25.5 / 300, 15.5 / 300, 30 / 300, 10 / 300])


def test_splits_keep_groups_together():
    assert parse_split("0.8,0.1,0.1") == pytest.approx({"train": 0.8, "val": 0.1, "test": 0.1})
    assert parse_split("train=3,test=1") == {"train": 0.75, "test": 0.25}
    with pytest.raises(RadioLlavaError):
        parse_split("0.5")
    groups = {f"r{i}": (f"img{i // 3}",) for i in range(30)}   # three records per picture
    groups["r29"] = ("img0", "src:x")                         # r29 shares img0 with r0..r2
    split = assign_splits(groups, {"train": 0.7, "test": 0.3}, seed=1)
    assert len({split[f"r{i}"] for i in (0, 1, 2, 29)}) == 1
    for k in range(10):
        assert len({split[f"r{i}"] for i in range(3 * k, 3 * k + 3) if i != 29}) == 1
    assert 15 <= sum(v == "train" for v in split.values()) <= 25


class FakeVLM:
    """A stand-in at the Assistant boundary: answers every question with ``reply``."""

    profile = get_profile("radio-llava")

    def __init__(self, reply):
        self.reply, self.questions = reply, []

    def ask(self, view, question=None, temperature=0.0, max_new_tokens=256, **kw):
        assert temperature == 0.5 and view.picture.size == (96, 96)
        self.questions.append(question)
        return SimpleNamespace(text=self.reply)


def test_vlm_augmented_turns_are_validated(sim_dir, tmp_path, tiny_model_dir):
    good = FakeVLM('Sure: [{"question": "How many bright sources?", "answer": "Two."}, {"question": 3}]')
    report = build("sim", sim_dir, tmp_path / "a.json", augment=good, limit=3)
    assert report["augmented"] == {"ok": 3, "failed": 0} and report["questions"]["augmented"] == 3
    assert "The image is a radio astronomical" in good.questions[0]       # fed the templated description
    rec = json.loads((tmp_path / "a.json").read_text())[0]
    assert rec["conversations"][-2:] == [{"from": "human", "value": "How many bright sources?"},
                                         {"from": "gpt", "value": "Two."}]
    bad = FakeVLM("I cannot answer in JSON")
    report = build("sim", sim_dir, tmp_path / "b.json", augment=bad, limit=3)
    assert report["augmented"] == {"ok": 0, "failed": 3} and report["images"] == 3   # kept, not dropped
    assert "augmented" not in report["questions"]
    report = build("sim", sim_dir, tmp_path / "c.json", augment=str(tiny_model_dir), limit=1)
    assert report["images"] == 1 and sum(report["augmented"].values()) == 1


class FakeJudge:
    profile = get_profile("radio-llava")

    def score(self, view, answers=None, question=None, **kw):
        multi = view.picture.size[0] > 60          # wide figures have several panels
        if answers == ["Yes", "No"]:
            yes = (0.9 if multi else 0.1) if "multiple plots" in question else \
                (0.8 if "garbled" in question else 0.2) if "corrupted" in question else 0.6
            return Scores(answers, [0.0, 0.0], [yes, 1 - yes])
        best = 9 if "well written" in question else 4
        probs = [0.9 if int(a) == best else 0.01 for a in answers]
        return Scores(answers, [0.0] * len(answers), probs)


def test_caption_filter(tmp_path, tiny_model_dir):
    recs = []
    for i, (size, caption) in enumerate([(40, "A well written caption of a radio map with many words."),
                                         (80, "A well written caption of a multi panel figure with words."),
                                         (40, "A garbled caption well written ,,, of the the."),
                                         (40, "Too short well written"),
                                         (40, "A plain caption that is not very informative at all.")]):
        Image.new("RGB", (size, 40), (i * 40, 0, 0)).save(tmp_path / f"f{i}.png")
        recs.append({"id": f"f{i}", "image": f"f{i}.png", "caption": caption})
    recs.append({"id": "gone", "image": "nowhere.png", "caption": "A caption without its figure file."})
    (tmp_path / "caps.json").write_text(json.dumps(recs))
    report = filter_captions(str(tmp_path / "caps.json"), str(tmp_path / "sel.json"), FakeJudge(),
                             progress=False, log=lambda m: None)
    assert report == {"records": 6, "scored": 5, "selected": 1, "skipped": 1,
                      "files": [str(tmp_path / "sel.json"), str(tmp_path / "sel.scores.json")]}
    sel = json.loads((tmp_path / "sel.json").read_text())
    assert [r["id"] for r in sel] == ["f0"] and validate(tmp_path / "sel.json") == []
    assert sel[0]["conversations"][1]["value"] == recs[0]["caption"]
    scores = {r["id"]: r for r in json.loads((tmp_path / "sel.scores.json").read_text())["records"]}
    assert scores["f1"]["has_multiplot"] and scores["f2"]["is_corrupted"] and scores["f3"]["n_words"] == 4
    assert scores["f4"]["caption_score"] == 4
    relaxed = filter_captions(str(tmp_path / "caps.json"), str(tmp_path / "sel2.json"), FakeJudge(),
                              Selection(allow_multiplot=True), progress=False, log=lambda m: None)
    assert relaxed["selected"] == 2
    with pytest.raises(RadioLlavaError, match="gone"):
        filter_captions(str(tmp_path / "caps.json"), str(tmp_path / "x.json"), FakeJudge(), on_error="stop",
                        progress=False)
    real = filter_captions(str(tmp_path / "caps.json"), str(tmp_path / "t.json"), str(tiny_model_dir),
                           progress=False, log=lambda m: None)
    assert real["scored"] == 5
    for r in json.loads((tmp_path / "t.scores.json").read_text())["records"]:
        assert 0 <= r["caption_score"] <= 10 and isinstance(r["has_multiplot"], bool)


def test_dataset_commands(sim_dir, tmp_path, capsys):
    out = tmp_path / "cli.json"
    assert main(["dataset", "build", "--from", "sim", str(sim_dir), "--out", str(out), "--limit", "4",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 4
    assert main(["dataset", "stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["images"] == 4 and stats["turns"] == report["turns"] and stats["invalid_records"] == 0
    assert stats["questions"] == report["questions"]
    assert main(["dataset", "stats", str(out)]) == 0
    assert "turns:" in capsys.readouterr().out
    assert main(["dataset", "build", "--from", "nope", "x", "--out", str(out)]) == 1
    assert "unknown input kind" in capsys.readouterr().err
    before = out.read_bytes()
    assert main(["dataset", "build", "--from", "sim", str(sim_dir), "--out", str(out), "--limit", "2"]) == 1
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before   # never replaced unasked
    assert main(["dataset", "build", "--from", "sim", str(sim_dir), "--out", str(out), "--limit", "2",
                 "--overwrite", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 2
    assert main(["dataset", "build", "--from", "mosaic", str(sim_dir), "--out", str(tmp_path / "m.json")]) == 1
    assert "--catalogue" in capsys.readouterr().err
    assert main(["dataset", "build", "--from", "sim", str(sim_dir), "--out", str(tmp_path / "x.txt")]) == 1
    assert main(["dataset", "stats", str(tmp_path / "none.json")]) == 1


def test_truncated_files_are_skipped_and_an_empty_build_fails_cleanly(sim_dir, tmp_path):
    """A truncated FITS is skipped and counted; when nothing can be built the build fails with one
    line and leaves no picture folder."""
    folder = tmp_path / "sim"
    shutil.copytree(sim_dir, folder)
    first = sorted((folder / "images").glob("*.fits"))[0]
    first.write_bytes(first.read_bytes()[:5000])
    report = build_dataset(BuildOptions(kind="sim", input=str(folder), out=str(tmp_path / "a.json"),
                                        progress=False), log=lambda m: None)
    assert report["skipped"] >= 1 and report["images"] >= 1
    assert report["skipped_by_reason"].get("unreadable file", 0) >= 1
    for f in (folder / "images").glob("*.fits"):
        f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(RadioLlavaError, match="no record could be built"):
        build_dataset(BuildOptions(kind="sim", input=str(folder), out=str(tmp_path / "b.json"), progress=False),
                      log=lambda m: None)
    assert not (tmp_path / "b_images").exists() and not (tmp_path / "b.json").exists()
