"""Benchmarks without a model: metrics against hand-computed confusion matrices, unparsed answers
counted as wrong, B7 box matching, the task definitions, and every kind of data set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import data as bdata
from benchmarks.scoring import classification_metrics, detection_counts, detection_metrics, iou, match
from benchmarks.tasks import UNPARSED, BenchTask, candidates, decide, get_bench, parse_codes
from glue_radiollava.cli import main
from glue_radiollava.core.errors import RadioLlavaError

SINGLE = BenchTask("BX", "single", ("A", "B", "C"), "three classes")
MULTI = BenchTask("BM", "multi", ("E", "D", "L"), "three labels")


# ------------------------------------------------------------------ metrics
def test_single_label_metrics_match_a_hand_computed_confusion_matrix():
    truths = [("A",), ("A",), ("B",), ("B",), ("C",)]
    preds = [("A",), ("B",), ("B",), (), ("C",)]
    parsed = [True, True, True, False, True]          # the 4th answer could not be read
    m = classification_metrics(SINGLE, truths, preds, parsed, n_boot=50, seed=1)
    # rows truth A, B, C; columns A, B, C, UNPARSED
    assert m["confusion_matrix"]["labels"] == ["A", "B", "C", UNPARSED]
    assert m["confusion_matrix"]["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]
    pc = m["per_class"]
    assert (pc["A"]["precision"], pc["A"]["recall"]) == (1.0, 0.5)
    assert pc["A"]["f1"] == pytest.approx(2 / 3)
    assert (pc["B"]["precision"], pc["B"]["recall"], pc["B"]["f1"]) == (0.5, 0.5, 0.5)   # the miss is B's FN
    assert (pc["C"]["precision"], pc["C"]["recall"], pc["C"]["f1"]) == (1.0, 1.0, 1.0)
    assert [pc[k]["support"] for k in "ABC"] == [2, 2, 1]
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert m["accuracy"] == pytest.approx(3 / 5)                 # the unparsed answer is wrong, not dropped
    assert m["n"] == 5 and m["unparsed"] == 1
    lo, hi = m["macro_f1_ci"]
    assert 0 <= lo <= hi <= 1 and all("f1_ci" in v for v in pc.values())
    assert m["bootstrap"]["resamples"] == 50


def test_dropping_unparsed_answers_would_flatter_the_model():
    truths = [("A",)] * 4
    preds = [("A",), (), (), ()]
    m = classification_metrics(SINGLE, truths, preds, [True, False, False, False], n_boot=0)
    assert m["accuracy"] == 0.25 and m["per_class"]["A"]["recall"] == 0.25 and m["unparsed"] == 3
    assert m["macro_labels"] == ["A"]          # classes neither true nor predicted stay out of AVG


def test_multi_label_metrics_match_hand_computed_counts():
    truths = [("E",), ("E", "D"), (), ("L",), ()]
    preds = [("E",), ("E",), ("D",), (), ()]
    parsed = [True, True, True, False, True]   # unparsed: every per-label decision wrong
    m = classification_metrics(MULTI, truths, preds, parsed, n_boot=20)
    # predicted indicator rows: [1,0,0] [1,0,0] [0,1,0] [1,1,0] (the truth [0,0,1] inverted) [0,0,0]
    cm = dict(zip(m["confusion_matrix"]["labels"], m["confusion_matrix"]["matrix"]))
    assert cm["E"] == [[2, 1], [0, 2]]         # [[TN, FP], [FN, TP]]
    assert cm["D"] == [[2, 2], [1, 0]]
    assert cm["L"] == [[4, 0], [1, 0]]
    pc = m["per_class"]
    assert pc["E"]["precision"] == pytest.approx(2 / 3) and pc["E"]["recall"] == 1.0
    assert pc["E"]["f1"] == pytest.approx(0.8)
    assert pc["D"]["f1"] == 0.0 and pc["L"]["f1"] == 0.0 and pc["L"]["support"] == 1
    assert m["macro_f1"] == pytest.approx(0.8 / 3)
    assert m["subset_accuracy"] == m["accuracy"] == pytest.approx(2 / 5)
    assert m["hamming_loss"] == pytest.approx(5 / 15)
    assert m["unparsed"] == 1


def test_box_matching_is_greedy_one_to_one_by_iou():
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    truth = [(0, 0, 10, 10), (20, 20, 30, 30)]
    preds = [(0, 0, 10, 10), (0, 0, 10, 9), (21, 21, 31, 31)]
    pairs = match(preds, truth, 0.5)
    assert sorted((i, j) for i, j, _ in pairs) == [(0, 0), (2, 1)]    # the duplicate box is not matched twice


def test_detection_metrics_count_flagged_boxes_and_unparsed_answers():
    bench = BenchTask("B7", "boxes", ("COMPACT", "EXTENDED"), "detection")
    truth_c = [(0, 0, 10, 10), (20, 20, 30, 30)]
    row = {"COMPACT": detection_counts([(0, 0, 10, 10), (21, 21, 31, 31), (50, 50, 60, 60)], 1, truth_c, 0.5),
           "EXTENDED": detection_counts([], 0, [(40, 40, 80, 80)], 0.5)}       # an unparsed answer: no boxes
    assert (row["COMPACT"]["tp"], row["COMPACT"]["fp"], row["COMPACT"]["fn"]) == (2, 2, 0)
    m = detection_metrics(bench, [row], unparsed=1, threshold=0.5, n_boot=10)
    pc = m["per_class"]
    assert (pc["COMPACT"]["precision"], pc["COMPACT"]["recall"]) == (0.5, 1.0)
    assert pc["COMPACT"]["f1"] == pytest.approx(2 / 3) and pc["COMPACT"]["support"] == 2
    assert pc["EXTENDED"]["recall"] == 0.0 and pc["EXTENDED"]["support"] == 1
    assert m["macro_f1"] == pytest.approx(1 / 3)
    assert m["accuracy"] == pytest.approx(2 / 5)            # TP / (TP + FP + FN)
    assert m["confusion_matrix"]["matrix"] == [[2, 0, 0], [0, 0, 1], [2, 0, 0]]
    assert m["unparsed"] == 1 and m["questions"] == 2
    strict = detection_counts([(0, 0, 10, 10), (21, 21, 31, 31)], 0, truth_c, 0.7)   # IoU 0.68 < 0.7
    assert (strict["tp"], strict["fp"], strict["fn"]) == (1, 1, 1)


# ------------------------------------------------------------------ tasks
def test_benchmarks_come_from_the_task_catalogue():
    b1, b2, b6 = get_bench("B1"), get_bench("b2"), get_bench("b6-fr-class")
    assert b1.kind == "multi" and b1.labels == ("EXTENDED", "DIFFUSE", "DIFFUSE-LARGE") and b1.none_label == "NONE"
    assert b2.labels == ("1C-1P", "1C-2P", "1C-3P", "2C-2P", "2C-3P", "3C-3P")
    assert b6.labels == ("FR-I", "FR-II") and "FR-II: radio-loud galaxies" in b6.prompt
    assert get_bench("B3").labels == ("Yes", "No") and get_bench("B4").kind == "yesno"
    assert {"COMPACT", "EXTENDED"} <= set(get_bench("B7").labels)
    assert parse_codes("all") == ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]
    assert parse_codes("b3, B1,B3") == ["B3", "B1"]
    with pytest.raises(RadioLlavaError, match="unknown benchmark"):
        parse_codes("B9")


def test_score_mode_candidates_and_one_decision_per_label():
    b1 = get_bench("B1")
    cands = candidates(b1)
    assert len(cands) == 8 and cands[0] == ("NONE", ()) and cands[-1][0] == "EXTENDED, DIFFUSE, DIFFUSE-LARGE"
    probs = [0.05, 0.4, 0.05, 0.05, 0.3, 0.05, 0.05, 0.05]   # NONE, E, D, L, E+D, E+L, D+L, E+D+L
    labels, per = decide(b1, probs)
    assert labels == ("EXTENDED",)                  # P(E) = 0.8; P(D) = 0.3 + 0.05 + 0.05 + 0.05 = 0.45
    assert per["EXTENDED"] == pytest.approx(0.8) and per["DIFFUSE"] == pytest.approx(0.45)
    labels, per = decide(get_bench("B6"), [0.3, 0.7])
    assert labels == ("FR-II",) and per == {"FR-I": 0.3, "FR-II": 0.7}


# ------------------------------------------------------------------ data
@pytest.fixture()
def ref_json(tmp_path, synthetic_fits):
    def make(records, name="set.json"):
        path = tmp_path / name
        path.write_text(json.dumps({"data": records}))
        return path
    synthetic_fits("a.fits")
    synthetic_fits("b.fits")
    return make


def test_reference_json_loads_with_labels_normalised(ref_json, tmp_path):
    path = ref_json([{"sname": "a", "filepaths": ["a.fits"], "label": "FRI"},
                     {"sname": "b", "filepaths": [str(tmp_path / "b.fits")], "label": "FR-II"}])
    sets = bdata.load(str(path))
    assert [d.bench.code for d in sets] == ["B6"]
    assert [s.truth for s in sets[0].samples] == [("FR-I",), ("FR-II",)]
    multi = ref_json([{"sname": "a", "filepaths": ["a.fits"], "label": ["COMPACT", "RADIO-GALAXY", "EXTENDED"]},
                      {"sname": "b", "filepaths": ["b.fits"], "label": ["BACKGROUND", "ARTEFACT"]}], "multi.json")
    sets = {d.bench.code: [s.truth for s in d.samples] for d in bdata.load(str(multi))}
    assert sets == {"B1": [("EXTENDED",), ()], "B3": [("Yes",), ("No",)], "B4": [("No",), ("Yes",)],
                    "B5": [("COMPLEX",), ("ORDINARY",)]}


def test_reference_json_bad_input_names_the_record(ref_json):
    missing = ref_json([{"sname": "x", "filepaths": ["nowhere.fits"], "label": "FR-I"}], "m.json")
    with pytest.raises(RadioLlavaError, match=r"record #1 \('x'\).*nowhere.fits not found"):
        bdata.load(str(missing))
    wrong = ref_json([{"sname": "a", "filepaths": ["a.fits"], "label": "FR-I"},
                      {"sname": "b", "filepaths": ["b.fits"], "label": "hybrid"}], "w.json")
    with pytest.raises(RadioLlavaError, match=r"record #2 \('b'\).*'hybrid' is not in the B6 label set"):
        bdata.load(str(wrong), ["B6"])
    with pytest.raises(RadioLlavaError, match=r"'1C-1P' is not in the B6 label set"):
        bdata.load(str(ref_json([{"sname": "a", "filepaths": ["a.fits"], "label": "1C-1P"}], "b2.json")), ["B6"])
    with pytest.raises(RadioLlavaError, match="empty"):
        bdata.load(str(ref_json([], "empty.json")))
    with pytest.raises(RadioLlavaError, match="duplicate sname"):
        bdata.load(str(ref_json([{"sname": "a", "filepaths": ["a.fits"], "label": "FR-I"}] * 2, "dup.json")))
    with pytest.raises(RadioLlavaError, match="not radioimg-multilabel"):
        bdata.load(str(ref_json([{"sname": "a", "filepaths": ["a.fits"], "label": ["GALAXY"]}], "u.json")), ["B1"])
    with pytest.raises(RadioLlavaError, match="no such file or folder, and not a built-in set"):
        bdata.load("no-such-set")


@pytest.fixture(scope="session")
def sim_folder(tmp_path_factory):
    from training.simulate import SimConfig, write_simulation   # tests may use training/; benchmarks/ may not

    folder = tmp_path_factory.mktemp("bench-sim") / "sim"
    write_simulation(folder, 8, seed=5, cfg=SimConfig(size=64, scene="mixed"), progress=False)
    return folder


def test_simulator_folder_gives_every_benchmark(sim_folder):
    sets = {d.bench.code: d for d in bdata.load(str(sim_folder))}
    assert list(sets) == ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]
    objects = json.loads((sim_folder / "objects.json").read_text())["images"]
    assert len(sets["B1"]) == len(objects) == len(sets["B7"])
    assert {s.truth[0] for s in sets["B6"].samples} <= {"FR-I", "FR-II"}
    b7 = sets["B7"]
    n_boxes = sum(len(o["objects"]) + sum(bool(x.get("radio_galaxy")) for x in o["objects"]) for o in objects)
    assert sum(len(s.boxes) for s in b7.samples) == n_boxes
    assert set(b7.bench.labels) == {b.label for s in b7.samples for b in s.boxes}
    only = bdata.load(str(sim_folder), ["B7"], classes=["compact"])[0]
    assert only.bench.labels == ("COMPACT",)


def test_written_reference_json_reads_back(sim_folder, tmp_path):
    for code in ("B2", "B7"):
        out = tmp_path / f"{code}.json"
        assert main(["bench", "data", str(sim_folder), "--task", code, "--out", str(out)]) == 0
        doc = json.loads(out.read_text())
        assert doc["task"] == code and {"sname", "filepaths", "label"} <= set(doc["data"][0])
        again = bdata.load(str(out), [code])[0]
        first = bdata.load(str(sim_folder), [code])[0]
        assert [(s.id, s.truth) for s in again.samples] == [(s.id, s.truth) for s in first.samples]
        if code == "B7":
            assert [len(s.boxes) for s in again.samples] == [len(s.boxes) for s in first.samples]
    assert main(["bench", "data", str(sim_folder), "--out", str(tmp_path / "x.json")]) == 1   # several tasks


def test_builtin_real_sets_load(data_dir):
    mb = bdata.load_one("mirabest", "B6", data_dir)
    assert len(mb) == 24 and {s.truth for s in mb.samples} == {("FR-I",), ("FR-II",)}
    assert len(bdata.load_one("mirabest-all", "B6", data_dir)) == 33      # hybrids never
    fr = bdata.load("frdeep", "all", data_dir)
    assert [d.bench.code for d in fr] == ["B6"] and len(fr[0]) == 24
    assert len(bdata.load_one("frdeep-test", "B6", data_dir)) == 3
    rgz = bdata.load_one("rgz", "B2", data_dir)
    assert len(rgz) == 72 and all(s.cutout and s.cutout[2] - s.cutout[0] >= 48 for s in rgz.samples)
    assert {s.truth[0] for s in rgz.samples} == set(rgz.bench.labels)
    lotss = bdata.load("lotss", "all", data_dir)
    assert [d.bench.code for d in lotss] == ["B7"]
    boxes = [b for s in lotss[0].samples for b in s.boxes]
    assert len(lotss[0]) == 2 and len(boxes) == 34 and set(lotss[0].bench.labels) == {"COMPACT", "EXTENDED"}
    assert all(b.box[2] > b.box[0] and b.box[3] > b.box[1] for b in boxes)
    with pytest.raises(RadioLlavaError, match="holds no labels for B3"):
        bdata.load("mirabest", ["B3"], data_dir)


def test_data_root_default_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("RADIOLLAVA_DATA", str(tmp_path / "absent"))
    with pytest.raises(RadioLlavaError, match="--data-root"):
        bdata.load("mirabest")
    monkeypatch.setenv("RADIOLLAVA_DATA", str(tmp_path))
    with pytest.raises(RadioLlavaError, match="labels.csv not found"):
        bdata.load("mirabest")


def test_islands_find_a_source_in_noise():
    from glue_radiollava.core.finders import find_islands

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:96]
    img = rng.normal(0, 1.0, (96, 96)) + 40 * np.exp(-((x - 30) ** 2 + (y - 60) ** 2) / (2 * 1.7 ** 2))
    img += 8 * np.exp(-(((x - 70) / 8.0) ** 2 + ((y - 25) / 3.0) ** 2) / 2)
    found = find_islands(img, beam_px=4.0)
    classes = sorted(c for c, _ in found)
    assert classes == ["COMPACT", "EXTENDED"]
    box = next(b for c, b in found if c == "COMPACT")
    assert box[0] < 30 < box[2] and box[1] < 60 < box[3]


def test_islands_detector_finds_nothing_on_a_nearly_blank_tile(synthetic_fits):
    """A scan tile at a mosaic's blank edge (a few pixels of data) gives no boxes, not an error."""
    from benchmarks.baselines import IslandsDetector
    from glue_radiollava.core.image import RadioImage

    blank = np.zeros((200, 200), bool)
    blank[:, :] = True
    blank[0:2, 0:3] = False                                   # six pixels of data in the corner
    cut = RadioImage.open(synthetic_fits(blank=blank)).cutout_pixels(0, 0, 64, 64)
    [(found, info)] = IslandsDetector(beam_px=4.0).detect([cut])
    assert found == [] and info[0]["found"] == 0
