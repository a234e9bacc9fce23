"""The Scan section of the glue plugin, offscreen, in a real GlueApplication on a simulated mosaic.

A test double stands at the detector boundary (it reports the simulator's truth boxes inside each
tile, as SkyBoxes through the mosaic's WCS); the tiny model drives the real threaded scan.
"""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qtpy import QtWidgets  # noqa: E402

from glue_helpers import open_image  # noqa: E402

from glue_radiollava.core.scan import read_journal  # noqa: E402
from glue_radiollava.core.skyregions import pixel_box_to_sky  # noqa: E402

CLASSES = {"boxes-compact": "COMPACT", "boxes-extended": "EXTENDED"}


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    """A 256² simulated LoTSS-like mosaic (13 compact sources, 1 extended) and its truth objects."""
    from training.simulate import config_for, write_simulation

    out = tmp_path_factory.mktemp("sim")
    write_simulation(out, 1, seed=9, cfg=config_for(size=256, mosaic=True), progress=False, overwrite=True)
    objects = json.loads((out / "objects.json").read_text())["images"][0]["objects"]
    return out / "images" / "mosaic_000000.fits", objects


def centre(obj):
    x0, y0, x1, y1 = obj["pixel_box"]
    return (x0 + x1) / 2, (y0 + y1) / 2


class TruthDetector:
    """Finds exactly the truth objects whose centre lies in a tile (of the asked tasks' classes).

    ``pause_after``: after that many calls, wait until ``go`` is set (Stop mid-scan, deterministically).
    """

    def __init__(self, objects, tasks, pause_after=None):
        self.objects, self.tasks = objects, list(tasks)
        self.calls, self.pause_after = 0, pause_after
        self.paused, self.go = threading.Event(), threading.Event()
        self.threads = set()

    def describe(self):
        return {"detector": "truth", "tasks": self.tasks}

    def detect(self, cutouts):
        self.threads.add(threading.get_ident())
        self.calls += 1
        if self.pause_after is not None and self.calls > self.pause_after:
            self.paused.set()
            assert self.go.wait(20)
        return [(self._found(c), []) for c in cutouts]

    def _found(self, cut):
        ny, nx = cut.shape
        out = []
        for task in self.tasks:
            for o in self.objects:
                x, y = centre(o)
                if o["class"] == CLASSES[task] and cut.x0 - 0.5 <= x < cut.x0 + nx - 0.5 \
                        and cut.y0 - 0.5 <= y < cut.y0 + ny - 0.5:
                    out.append((task, pixel_box_to_sky(o["class"], o["pixel_box"], cut.image.wcs, 0.9)))
        return out


def scan_panel(app, mosaic, tmp_path, **detector_kw):
    from glue_radiollava.qt.panel import get_panel

    data, viewer = open_image(app, mosaic[0])
    panel = get_panel(app)
    section = panel.scan_section
    section.folder = tmp_path / "scans"
    detectors = []

    def factory(assistant, tasks):
        detectors.append(TruthDetector(mosaic[1], tasks, **detector_kw))
        return detectors[-1]

    section.detector_factory = factory
    section.tile_spin.setValue(64)
    return data, viewer, panel, section, detectors


def scan_and_wait(qtbot, section, whole=True):
    with qtbot.waitSignal(section.scan_finished, timeout=30000) as blocker:
        assert (section.scan_whole if whole else section.scan_view)()
    return blocker.args[0]


def test_whole_image_scan_makes_a_linked_table_and_class_subsets(app, qtbot, mosaic, tmp_path):
    from glue.core.link_helpers import LinkSame
    from glue.core.subset import RangeSubsetState

    data, viewer, panel, section, detectors = scan_panel(app, mosaic, tmp_path)
    assert section.selected_tasks() == ["boxes-compact", "boxes-extended"]
    result = scan_and_wait(qtbot, section)
    objects = mosaic[1]
    assert result.complete and result.tiles_done == result.tiles_total == 25         # 64 px, overlap 0.25
    assert detectors[0].threads and threading.get_ident() not in detectors[0].threads
    assert result.found > len(objects)                      # seen again in overlapping tiles …
    table = section.last_table                              # … each truth object once after merging
    assert table in app.data_collection and table.size == len(objects) == 14
    assert table.label == f"scan: {data.label} (boxes-compact, boxes-extended)"
    classes = list(table["class"])
    assert classes.count("COMPACT") == 13 and classes.count("EXTENDED") == 1
    assert set(table["task"]) == {"boxes-compact", "boxes-extended"}
    wcs = data.coords.celestial
    truth = wcs.pixel_to_world(*np.array([centre(o) for o in objects]).T)
    found = wcs.pixel_to_world(*wcs.world_to_pixel_values(table["ra"], table["dec"]))
    assert max(min(f.separation(truth).arcsec) for f in found) < 0.01
    # linked to the image's world coordinates (RA with RA, Dec with Dec)
    ra_cid, dec_cid = data.world_component_ids[1], data.world_component_ids[0]
    pairs = {frozenset((link._cid1, link._cid2)) for link in app.data_collection.external_links
             if isinstance(link, LinkSame)}
    assert {frozenset((table.id["ra"], ra_cid)), frozenset((table.id["dec"], dec_cid))} <= pairs
    # one subset per class on the image, coloured by class; they select the table's own rows too
    groups = {g.label: g for g in section.last_groups}
    assert set(groups) == {"COMPACT (scan)", "EXTENDED (scan)"}
    assert groups["EXTENDED (scan)"].style.color.lower() == "#ffa500"
    image_subset = next(s for s in groups["COMPACT (scan)"].subsets if s.data is data)
    mask = image_subset.to_mask()
    for o in objects:
        x, y = (int(round(v)) for v in centre(o))
        assert mask[y, x] == (o["class"] == "COMPACT")
    table_subset = next(s for s in groups["COMPACT (scan)"].subsets if s.data is table)
    np.testing.assert_array_equal(table_subset.to_mask(), np.array(classes) == "COMPACT")
    # a selection on the table's ra propagates to the image through the links
    ra = np.sort(table["ra"])
    west = RangeSubsetState(ra[0] - 2e-3, ra[0] + 2e-3, table.id["ra"])        # about ±4 pixels
    group = app.data_collection.new_subset_group("west", west)
    on_image = next(s for s in group.subsets if s.data is data).to_mask()
    first = [o for o in objects if abs(wcs.pixel_to_world(*centre(o)).ra.deg - ra[0]) < 1e-6][0]
    x, y = (int(round(v)) for v in centre(first))
    assert on_image[y, x] and 0 < on_image.sum() < on_image.size / 10
    # the catalogue and the journal are in the per-scan folder, named after the image
    out = section.last_request.out
    assert out.parent == tmp_path / "scans" and out.name.startswith("mosaic_000000-") and out.exists()
    assert str(section.last_request.journal) in section.status.text()
    assert "14 sources" in panel.message.text()
    from astropy.table import Table
    from regions import Regions

    assert len(Table.read(out)) == 14
    assert len(Regions.read(section.export_scan(tmp_path / "scan.reg"))) == 14
    exported = Table.read(section.export_scan(tmp_path / "scan.fits"))
    assert len(exported) == 14 and set(exported["task"]) == {"boxes-compact", "boxes-extended"}


def test_scan_this_view_covers_only_the_visible_pixels(app, qtbot, mosaic, tmp_path):
    data, viewer, panel, section, _ = scan_panel(app, mosaic, tmp_path)
    section.set_tasks(["boxes-compact"])
    viewer.state.aspect = "auto"
    viewer.state.x_min, viewer.state.x_max = -30.5, 129.5          # partly off the image: clipped
    viewer.state.y_min, viewer.state.y_max = 60.5, 200.5
    result = scan_and_wait(qtbot, section, whole=False)
    assert section.last_request.bounds == (0, 61, 130, 201)
    _, records = read_journal(result.journal)
    assert records and result.complete
    for rec in records.values():
        x0, y0, x1, y1 = rec["box"]
        assert 0 <= x0 and x1 <= 130 and 61 <= y0 and y1 <= 201
    inside = [o for o in mosaic[1] if o["class"] == "COMPACT" and 0 <= centre(o)[0] < 129.5
              and 60.5 <= centre(o)[1] < 200.5]
    assert 0 < len(inside) < 13 and section.last_table.size == len(inside)
    assert [g.label for g in section.last_groups] == ["COMPACT (scan)"]


def test_stop_keeps_the_finished_tiles_and_reports_incomplete(app, qtbot, mosaic, tmp_path):
    data, viewer, panel, section, detectors = scan_panel(app, mosaic, tmp_path, pause_after=1)
    section.batch_size = 4
    with qtbot.waitSignal(section.scan_finished, timeout=30000) as blocker:
        assert section.scan_whole()
        qtbot.waitUntil(lambda: bool(detectors) and detectors[0].paused.is_set(), timeout=10000)
        assert panel.busy and section.stop_button.isEnabled()
        assert not panel.ask_button.isEnabled() and not section.whole_button.isEnabled()
        assert panel.load_model() is False                      # no other model job meanwhile
        qtbot.waitUntil(lambda: section.progress.value() == 4, timeout=5000)
        section.stop_button.click()
        detectors[0].go.set()
    result = blocker.args[0]
    assert not result.complete and result.tiles_done == 8 and result.tiles_total == 25
    _, records = read_journal(result.journal)
    assert sorted(records) == list(range(8))
    assert "stopped" in panel.message.text() and "8/25 tiles" in panel.message.text()
    assert section.last_table.size == len(result.detections) > 0       # what the 8 tiles found is kept
    assert not panel.busy and section.whole_button.isEnabled() and not section.stop_button.isEnabled()


def test_resume_continues_a_stopped_scan_from_its_journal(app, qtbot, mosaic, tmp_path, synthetic_fits):
    data, viewer, panel, section, detectors = scan_panel(app, mosaic, tmp_path, pause_after=1)
    section.batch_size = 4
    with qtbot.waitSignal(section.scan_finished, timeout=30000) as blocker:
        assert section.scan_whole()
        qtbot.waitUntil(lambda: bool(detectors) and detectors[0].paused.is_set(), timeout=10000)
        section.stop()
        detectors[0].go.set()
    stopped = blocker.args[0]
    assert not stopped.complete and stopped.tiles_done == 8
    journal = stopped.journal
    section.detector_factory = lambda assistant, tasks: detectors.append(TruthDetector(mosaic[1], tasks)) \
        or detectors[-1]

    with qtbot.waitSignal(section.scan_finished, timeout=30000) as blocker:   # as after a crash of glue
        assert section.resume_scan(journal)
    resumed = blocker.args[0]
    assert resumed.complete and resumed.tiles_done == 25
    assert detectors[-1].calls == 5                           # 17 tiles left, in batches of 4
    assert section.last_table.size == len(mosaic[1]) == 14    # everything, found before and after
    assert section.last_request.out == journal.with_name(journal.name[:-len(".scan.jsonl")])

    assert section.resume_scan(tmp_path / "nothing.txt") is False
    assert "not a scan journal" in panel.message.text() and "\n" not in panel.message.text()
    app.data_collection.remove(data)                          # another image: the journal is refused
    open_image(app, synthetic_fits(shape=(256, 256)))
    with qtbot.waitSignal(panel.busy_changed, timeout=10000, check_params_cb=lambda busy: not busy):
        assert section.resume_scan(journal)
    assert "other settings (image" in panel.message.text()


def test_errors_are_one_line_messages(app, qtbot, mosaic, tmp_path, synthetic_fits):
    from glue_radiollava.qt.panel import get_panel

    panel = get_panel(app)
    section = panel.scan_section
    section.detector_factory = lambda assistant, tasks: TruthDetector([], tasks)
    assert section.scan_whole() is False
    assert "image viewer" in panel.message.text()
    data, viewer = open_image(app, synthetic_fits(ctype=("FREQ", "VELO")))
    assert section.scan_whole() is False
    assert "celestial" in panel.message.text() and "\n" not in panel.message.text()
    app.data_collection.remove(data)
    QtWidgets.QApplication.processEvents()
    _, viewer = open_image(app, mosaic[0])
    viewer.state.aspect = "auto"
    viewer.state.x_min, viewer.state.x_max = 10, 40
    viewer.state.y_min, viewer.state.y_max = 10, 40
    section.tile_spin.setValue(64)
    assert section.scan_view() is False
    message = panel.message.text()
    assert "larger than the region (31×31 pixels); set the tile to 31 or less" in message
    assert "\n" not in message
    section.set_tasks([])
    assert section.scan_whole() is False and "box task" in panel.message.text()
    assert not panel.busy


def test_tiny_model_loads_first_and_scans_in_the_thread(app, qtbot, mosaic, tmp_path, tiny_model_dir):
    from glue_radiollava.qt.panel import get_panel
    from glue_radiollava.qt.sections import default_tile

    open_image(app, mosaic[0])
    panel = get_panel(app)
    panel.model_edit.setText(str(tiny_model_dir))
    section = panel.scan_section
    section.folder = tmp_path / "scans"
    section.set_tasks(["boxes-compact"])
    section.overlap_spin.setValue(0.0)
    with qtbot.waitSignal(section.scan_finished, timeout=120000) as blocker:
        assert section.scan_whole()                           # no model yet: it is loaded first
    assert panel.assistant is not None
    assert section.tile_spin.value() == default_tile(str(tiny_model_dir)) == 128    # nano would be 64
    assert default_tile("nano") == 64
    result = blocker.args[0]
    assert result.complete and result.tiles_done == 4
    _, records = read_journal(result.journal)
    asked = [rec for rec in records.values() if not rec["blank"]]
    assert asked and all(rec["answers"][0]["task"] == "boxes-compact" for rec in asked)
    assert "scan done" in panel.message.text() and not panel.busy


def test_scan_subsets_draw_and_survive_a_saved_session(app, qtbot, mosaic, tmp_path):
    from glue.core.state import GlueSerializer, GlueUnSerializer
    from glue_radiollava.qt.rois import BoxesROI

    data, viewer, panel, section, _ = scan_panel(app, mosaic, tmp_path)
    scan_and_wait(qtbot, section)
    viewer.figure.canvas.draw()                              # the subset layers render
    layers = [ls for ls in viewer.state.layers if getattr(ls.layer, "label", "").endswith("(scan)")]
    assert len(layers) == 2 and all(ls.visible for ls in layers)
    saved = GlueSerializer(app.data_collection).dumps()
    restored = GlueUnSerializer.loads(saved).object("__main__")
    group = next(g for g in restored.subset_groups if g.label == "COMPACT (scan)")
    assert isinstance(group.subset_state.roi, BoxesROI)
    np.testing.assert_array_equal(group.subset_state.roi.boxes, section.last_groups[0].subset_state.roi.boxes)
    assert len(restored.external_links) >= 2


def test_boxes_roi_agrees_with_rectangles_on_grids_and_scattered_points():
    from glue.core.roi import RectangularROI
    from glue_radiollava.qt.rois import BoxesROI

    rng = np.random.default_rng(3)
    x0, y0 = rng.uniform(0, 90, (2, 40))
    w, h = rng.uniform(1, 12, (2, 40))
    boxes = np.stack([x0 - 0.5, x0 + w, y0 - 0.5, y0 + h], axis=1)
    roi = BoxesROI(boxes)

    def reference(x, y):
        return np.any([RectangularROI(*b).contains(x, y) for b in boxes], axis=0)

    y, x = np.mgrid[0:100, 0:120].astype(float)
    np.testing.assert_array_equal(roi.contains(x, y), reference(x, y))                 # a pixel grid
    cube = np.broadcast_to(x, (1, 1, 100, 120)), np.broadcast_to(y, (1, 1, 100, 120))
    np.testing.assert_array_equal(roi.contains(*cube), reference(*cube))               # a radio cube
    px, py = rng.uniform(-5, 110, (2, 5000))
    np.testing.assert_array_equal(roi.contains(px, py), reference(px, py))             # a linked table
    assert roi.contains(x0[0] + 0.1, y0[0] + 0.1) is True and not BoxesROI().defined()
