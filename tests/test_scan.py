"""Survey scans (core/scan.py, `radiollava scan`): tiles, merging on the sky, journal and resume."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.image import RadioImage
from glue_radiollava.core.scan import (AssistantDetector, Detection, journal_path, merge, plan_tiles,
                                       read_journal, scan, write_outputs)
from glue_radiollava.core.skyregions import pixel_box_to_sky


class TruthAssistant:
    """A stand-in for the model at the Assistant boundary: it answers each box task with the
    radio-llava YOLO text of the simulated objects of that class lying whole in the picture, so the
    real parse → Transform → sky path and the merging run on known boxes."""

    def __init__(self, loaded, truth):
        from glue_radiollava.core.assistant import Assistant

        self.inner = Assistant(loaded)
        self.loaded, self.truth, self.calls = loaded, truth, 0

    @property
    def profile(self):
        return self.inner.profile

    def view(self, cutout):
        return self.inner.view(cutout)

    def ask_batch(self, views, task=None, max_new_tokens=64, **_):
        from glue_radiollava.core.parsing import format_yolo_boxes
        from glue_radiollava.core.tasks import get_task

        task = get_task(task) if isinstance(task, str) else task
        self.calls += len(views)
        answers = []
        for view in views:
            cut, tr = view.cutout, view.transform
            ny, nx = cut.shape
            boxes = []
            for o in self.truth:
                X0, Y0, X1, Y1 = o["pixel_box"]
                inside = X0 >= cut.x0 - 0.5 and Y0 >= cut.y0 - 0.5 and X1 <= cut.x0 + nx - 0.5 and Y1 <= cut.y0 + ny - 0.5
                if inside and o["class"] == task.box_class:
                    u0, v0, u1, v1 = tr.mosaic_box_to_normalised(X0, Y0, X1, Y1)
                    boxes.append([(u0 + u1) / 2, (v0 + v1) / 2, u1 - u0, v1 - v0])
            text = format_yolo_boxes(boxes) if boxes else task.negative_answer
            answer = self.inner.answer_for(view, task.prompt, task, text, False, {})
            answer.confidence = 0.9
            answers.append(answer)
        return answers


def _truth_inside_some_tile(truth, tiles, cls):
    def whole(o, t):
        X0, Y0, X1, Y1 = o["pixel_box"]
        return X0 >= t.x0 - 0.5 and Y0 >= t.y0 - 0.5 and X1 <= t.x1 - 0.5 and Y1 <= t.y1 - 0.5
    return [o for o in truth if o["class"] == cls and any(whole(o, t) for t in tiles)]


# ------------------------------------------------------------------ tiles
def test_tiles_cover_the_image_with_the_overlap_asked():
    tiles = plan_tiles((300, 500), 128, 0.25)
    xs = sorted({t.x0 for t in tiles})
    ys = sorted({t.y0 for t in tiles})
    assert xs[0] == 0 and xs[-1] + 128 == 500 and ys[-1] + 128 == 300       # flush with the far edges
    assert all(b - a <= 96 for a, b in zip(xs, xs[1:]))                      # step 96 = 128 × (1 − 0.25)
    covered = np.zeros((300, 500), bool)
    for t in tiles:
        covered[t.y0:t.y1, t.x0:t.x1] = True
    assert covered.all() and len({t.index for t in tiles}) == len(tiles)


@pytest.mark.parametrize("tile, overlap, bounds, message", [
    (600, 0.25, None, "tile size 600 px is larger than the image (500×300 pixels); use --tile 300 or less"),
    (64, 0.25, (100, 100, 150, 400), "larger than the region (50×200 pixels)"),
    (64, 1.0, None, "overlap 1.0"),
    (64, 0.25, (900, 900, 1000, 1000), "outside the image"),
])
def test_bad_tiling_is_a_clear_error(tile, overlap, bounds, message):
    with pytest.raises(RadioLlavaError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_tiles((300, 500), tile, overlap, bounds)


# ------------------------------------------------------------------ merging
def test_merge_keeps_whole_boxes_and_separates_classes(synthetic_fits):
    image = RadioImage.open(synthetic_fits())
    wcs = image.wcs
    whole = pixel_box_to_sky("EXTENDED", (100, 60, 130, 90), wcs, 0.5)
    cut = pixel_box_to_sky("EXTENDED", (100, 60, 120, 90), wcs, 0.9)        # truncated by a tile edge
    shifted = pixel_box_to_sky("EXTENDED", (101, 61, 131, 91), wcs, 0.95)   # the same source, IoU 0.88
    other_class = pixel_box_to_sky("COMPACT", (100, 60, 130, 90), wcs, 0.5)
    far = pixel_box_to_sky("EXTENDED", (10, 10, 20, 20), wcs, 0.1)
    dets = [Detection(cut, 1, "t", cut_by_tile=True), Detection(whole, 0, "t"), Detection(shifted, 2, "t"),
            Detection(other_class, 0, "t"), Detection(far, 3, "t")]
    kept = merge(dets)
    assert [(d.box.label, d.tile) for d in kept] == [("EXTENDED", 2), ("COMPACT", 0), ("EXTENDED", 3)]
    assert merge([]) == []


# ------------------------------------------------------------------ scanning
def test_scan_finds_the_simulated_sources_once_each(sim_mosaic, tiny_loaded, tmp_path):
    path, truth = sim_mosaic
    image = RadioImage.open(path)
    tiles = plan_tiles(image.shape, 96, 0.5)
    assistant = TruthAssistant(tiny_loaded, truth)
    detector = AssistantDetector(assistant, ["boxes-compact", "boxes-extended"])
    result = scan(image, detector, tiles, journal_path(tmp_path / "cat.ecsv"), batch_size=8)
    assert result.complete and result.tiles_done == len(tiles)
    expected = {c: _truth_inside_some_tile(truth, tiles, c) for c in ("COMPACT", "EXTENDED")}
    n_expected = sum(map(len, expected.values()))
    assert n_expected >= 20
    assert result.found > n_expected                 # overlapping tiles saw sources more than once …
    assert len(result.detections) == n_expected      # … and each is in the catalogue exactly once
    for cls, objs in expected.items():
        got = [d.box for d in result.detections if d.box.label == cls]
        for o in objs:                                # every source at its simulated sky position
            sep = [np.hypot((b.ra - o["sky_box"]["ra"]) * np.cos(np.radians(o["dec"])),
                            b.dec - o["sky_box"]["dec"]) * 3600 for b in got]
            assert min(sep) < 1.5                     # arcsec: one pixel
    assert all(d.box.score == 0.9 for d in result.detections)

    out = write_outputs(result, tmp_path / "cat.ecsv", tmp_path / "cat.reg", image.wcs, {"TILE": 96})
    from astropy.table import Table
    from regions import Regions

    table = Table.read(out[0])
    assert len(table) == n_expected and {"ra", "dec", "width", "height", "class", "score", "tile", "task"} <= set(
        table.colnames)
    assert table.meta["SCANDONE"] is True and table.meta["TILE"] == 96
    assert len(Regions.read(out[1], format="ds9")) == n_expected


def test_cancel_keeps_the_work_and_resume_finishes_it(sim_mosaic, tiny_loaded, tmp_path):
    path, truth = sim_mosaic
    image = RadioImage.open(path)
    tiles = plan_tiles(image.shape, 128, 0.25)
    journal = journal_path(tmp_path / "cat.ecsv")
    cancel = threading.Event()

    def stop_after_two_batches(done, total):
        if done >= 8:
            cancel.set()

    first = TruthAssistant(tiny_loaded, truth)
    partial = scan(image, AssistantDetector(first, ["boxes-compact"]), tiles, journal, batch_size=4,
                   on_progress=stop_after_two_batches, cancel=cancel)
    assert not partial.complete and partial.tiles_done == 8 and first.calls == 8
    _, records = read_journal(journal)
    assert sorted(records) == list(range(8))

    with pytest.raises(RadioLlavaError, match="holds an earlier scan; add --resume"):
        scan(image, AssistantDetector(first, ["boxes-compact"]), tiles, journal)
    with pytest.raises(RadioLlavaError, match="other settings"):
        scan(image, AssistantDetector(first, ["boxes-compact"]), tiles, journal, resume=True,
             settings={"tile": 999})

    lines = journal.read_text().splitlines(keepends=True)         # a crash tore the last record
    journal.write_text("".join(lines[:-1]) + lines[-1][:25])
    second = TruthAssistant(tiny_loaded, truth)
    resumed = scan(image, AssistantDetector(second, ["boxes-compact"]), tiles, journal, batch_size=4, resume=True)
    assert resumed.complete and second.calls == len(tiles) - 7     # the torn tile and those not yet done
    assert sorted(read_journal(journal)[1]) == list(range(len(tiles)))
    fresh = scan(image, AssistantDetector(TruthAssistant(tiny_loaded, truth), ["boxes-compact"]), tiles, None)
    assert sorted((round(d.box.ra, 7), round(d.box.dec, 7)) for d in resumed.detections) == \
        sorted((round(d.box.ra, 7), round(d.box.dec, 7)) for d in fresh.detections)


def test_blank_tiles_are_skipped_and_a_region_limits_the_scan(tmp_path, synthetic_fits, tiny_loaded):
    from regions import PixCoord, RectanglePixelRegion

    blank = np.zeros((200, 200), bool)
    blank[:, :100] = True
    image = RadioImage.open(synthetic_fits(blank=blank))
    tiles = plan_tiles(image.shape, 50, 0.0)
    assistant = TruthAssistant(tiny_loaded, [])
    result = scan(image, AssistantDetector(assistant, ["boxes-compact"]), tiles, None, batch_size=16)
    assert result.tiles_blank == 8 and assistant.calls == 8          # the left half is NaN

    region = RectanglePixelRegion(PixCoord(150, 150), 60, 60)
    truth = [{"class": "COMPACT", "pixel_box": [110, 70, 130, 90]},   # outside the region
             {"class": "COMPACT", "pixel_box": [140, 140, 160, 160]}]
    bbox = region.bounding_box
    bounds = (bbox.ixmin, bbox.iymin, bbox.ixmax, bbox.iymax)
    tiles = plan_tiles(image.shape, 50, 0.5, bounds)
    assert all(t.x0 >= bounds[0] and t.y0 >= bounds[1] and t.x1 <= bounds[2] for t in tiles)
    result = scan(image, AssistantDetector(TruthAssistant(tiny_loaded, truth), ["boxes-compact"]), tiles, None,
                  keep=region, bounds=bounds)
    assert [tuple(round(v) for v in d.box.pixel_box) for d in result.detections] == [(140, 140, 160, 160)]


def test_an_image_without_a_celestial_wcs_is_refused(tmp_path, capsys):
    from astropy.io import fits

    from glue_radiollava.cli import main

    path = tmp_path / "pixels.fits"
    data = np.random.default_rng(0).normal(size=(64, 64)).astype("f4")
    fits.PrimaryHDU(data).writeto(path)
    assert main(["scan", str(path), "--task", "boxes-compact", "--out", str(tmp_path / "c.ecsv")]) == 1
    assert "pixels.fits (HDU 0) has no celestial WCS" in capsys.readouterr().err


def test_only_box_tasks_scan(tiny_loaded):
    with pytest.raises(RadioLlavaError, match="not boxes; a scan needs box tasks"):
        AssistantDetector(TruthAssistant(tiny_loaded, []), ["b3-radio-galaxy"])


def test_islands_detector_through_the_scan_beats_chance(sim_mosaic):
    """The baseline the model is measured against: a real detector, merged across overlaps."""
    from benchmarks.baselines import IslandsDetector
    from benchmarks.scoring import match

    path, truth = sim_mosaic
    image = RadioImage.open(path)
    result = scan(image, IslandsDetector(beam_px=4.0), plan_tiles(image.shape, 64, 0.25), None, batch_size=32)
    pairs = match([list(d.box.pixel_box) for d in result.detections], [o["pixel_box"] for o in truth], 0.5)
    assert len(pairs) / len(truth) > 0.5 and len(pairs) / len(result.detections) > 0.4
    assert result.found > len(result.detections)


# ------------------------------------------------------------------ command line
def test_scan_command_writes_catalogue_regions_and_resumes(sim_mosaic, tiny_model_dir, tmp_path, capsys):
    from astropy.table import Table

    from glue_radiollava.cli import main

    path, _ = sim_mosaic
    out = tmp_path / "scan.ecsv"
    args = ["scan", str(path), "--task", "boxes-compact", "--tile", "128", "--model", str(tiny_model_dir),
            "--max-new-tokens", "8", "--out", str(out), "--regions-out", str(tmp_path / "scan.reg"), "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "from 25/25 tiles" in text and "scan complete" in text
    table = Table.read(out)
    assert table.meta["NTILES"] == 25 and table.meta["SCANDONE"] is True
    assert (tmp_path / "scan.reg").exists() and journal_path(out).exists()

    assert main(args) == 1                                    # the journal is there: refused …
    assert "add --resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0                      # … and resumed (nothing left to do)
    assert "from 25/25 tiles" in capsys.readouterr().out


@pytest.mark.parametrize("extra, out, message", [
    (["--task", "b3-radio-galaxy"], "c.ecsv", "not boxes"),
    (["--task", "boxes-compact", "--tile", "4096"], "c.ecsv", "tile size 4096 px is larger than the image"),
    (["--task", "boxes-compact"], "c.txt", "--out c.txt: use a table file"),
])
def test_scan_bad_input_is_one_line(sim_mosaic, tmp_path, capsys, tiny_model_dir, extra, out, message):
    from glue_radiollava.cli import main

    code = main(["scan", str(sim_mosaic[0]), *extra, "--model", str(tiny_model_dir), "--out", out])
    err = capsys.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_writes_what_was_found_and_resume_completes(sim_mosaic, tiny_model_dir, tmp_path, capsys,
                                                         monkeypatch):
    from astropy.table import Table

    from glue_radiollava.cli import main
    from glue_radiollava.core import scan as core_scan

    path, _ = sim_mosaic
    out = tmp_path / "scan.ecsv"
    args = ["scan", str(path), "--task", "boxes-compact", "--tile", "128", "--model", str(tiny_model_dir),
            "--max-new-tokens", "8", "--batch-size", "5", "--out", str(out), "--quiet"]
    real_detect, calls = core_scan.AssistantDetector.detect, []

    def interrupted_on_the_third_batch(self, cutouts):
        calls.append(len(cutouts))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_detect(self, cutouts)

    monkeypatch.setattr(core_scan.AssistantDetector, "detect", interrupted_on_the_third_batch)
    assert main(args) == 130
    captured = capsys.readouterr()
    assert "from 10/25 tiles" in captured.out and "--resume" in captured.err
    assert Table.read(out).meta["SCANDONE"] is False           # the partial catalogue is written
    monkeypatch.setattr(core_scan.AssistantDetector, "detect", real_detect)
    assert main(args + ["--resume"]) == 0
    assert "from 25/25 tiles" in capsys.readouterr().out and Table.read(out).meta["SCANDONE"] is True


def test_sharded_scan_is_gathered_by_the_main_process(sim_mosaic, tiny_model_dir, tmp_path, monkeypatch,
                                                     fake_state):
    from astropy.table import Table

    from glue_radiollava.cli import main
    from glue_radiollava.core import processes

    path, _ = sim_mosaic
    def args(out):
        return ["scan", str(path), "--task", "boxes-compact", "--tile", "128", "--model", str(tiny_model_dir),
                "--max-new-tokens", "12", "--out", str(out), "--quiet"]

    assert main(args(tmp_path / "one.ecsv")) == 0
    barrier, states, codes = threading.Barrier(2), {}, {}
    monkeypatch.setattr(processes, "process_state", lambda device=None: states[threading.current_thread().name])

    def process(index):
        states[threading.current_thread().name] = fake_state(index, barrier)
        codes[index] = main(args(tmp_path / "two.ecsv"))

    threads = [threading.Thread(target=process, args=(i,), name=f"rank{i}") for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert codes == {0: 0, 1: 0}
    assert not list(tmp_path.glob("two.ecsv.rank*"))           # parts folded into one journal
    _, one = read_journal(journal_path(tmp_path / "one.ecsv"))
    _, two = read_journal(journal_path(tmp_path / "two.ecsv"))
    assert sorted(two) == sorted(one) == list(range(25))
    assert [two[k]["answers"] for k in sorted(two)] == [one[k]["answers"] for k in sorted(one)]
    a, b = Table.read(tmp_path / "one.ecsv"), Table.read(tmp_path / "two.ecsv")
    assert len(a) == len(b) and list(a["ra"]) == list(b["ra"])


def test_a_header_only_journal_does_not_block_a_new_scan(tmp_path):
    """A scan that stopped before its first tile (e.g. the image failed) left only a header: the
    next run starts afresh; a journal with finished tiles still asks for --resume."""
    import json

    from glue_radiollava.core.scan import check_journal, journal_path

    journal = journal_path(tmp_path / "cat.ecsv")
    journal.write_text(json.dumps({"header": {"tile": 64}}) + "\n")
    check_journal(journal, resume=False)
    assert not journal.exists()
    journal.write_text(json.dumps({"header": {"tile": 64}}) + "\n" + json.dumps({"tile": 0, "boxes": []}) + "\n")
    with pytest.raises(RadioLlavaError, match="--resume"):
        check_journal(journal, resume=False)
