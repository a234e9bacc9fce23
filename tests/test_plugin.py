"""The glue plugin, offscreen, in a real GlueApplication with real FITS files.

A test double stands at the Assistant boundary where the answer must be known (box positions);
the tiny model drives the real threaded loading and generation path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qtpy import QtCore, QtGui, QtWidgets  # noqa: E402

from glue_helpers import (LOTSS, PYBDSF, SCORPIO, FakeAssistant, ask_and_wait,  # noqa: E402,F401
                          known_boxes_panel, open_image)


def drag(qtbot, viewer, tool_id, start, end):
    """A real mouse drag on the viewer's canvas, from data coordinates ``start`` to ``end``."""
    viewer.toolbar.active_tool = tool_id
    canvas = viewer.figure.canvas
    ratio = canvas.device_pixel_ratio or 1

    def point(xy):
        x, y = viewer.axes.transData.transform(xy)
        return QtCore.QPointF(x / ratio, canvas.height() - y / ratio)

    def send(kind, xy, buttons):
        event = QtGui.QMouseEvent(kind, point(xy), QtCore.Qt.LeftButton, buttons, QtCore.Qt.NoModifier)
        QtWidgets.QApplication.sendEvent(canvas, event)

    send(QtCore.QEvent.MouseButtonPress, start, QtCore.Qt.LeftButton)
    for f in np.linspace(0, 1, 5)[1:]:
        send(QtCore.QEvent.MouseMove, tuple(np.add(start, f * np.subtract(end, start))), QtCore.Qt.LeftButton)
    send(QtCore.QEvent.MouseButtonRelease, end, QtCore.Qt.NoButton)
    QtWidgets.QApplication.processEvents()


def test_plugin_is_loaded_and_setup_is_idempotent(glue_plugins):
    import glue_radiollava
    from glue.main import list_loaded_plugins
    from glue_qt.config import layer_action, preference_panes
    from glue_qt.viewers.image import ImageViewer

    assert "glue_radiollava" in list_loaded_plugins()
    glue_radiollava._loaded = False
    glue_radiollava.setup()
    glue_radiollava.setup()
    assert ImageViewer.tools.count("radiollava:rectangle") == 1
    assert ImageViewer.tools.count("radiollava:circle") == 1
    assert sum(item.label.startswith("Ask radio-llava") for item in layer_action) == 1
    assert sum(name == "radio-llava" for name, _ in preference_panes) == 1


def test_drag_makes_a_new_subset_and_the_panel_gets_the_cutout(app, qtbot, data_dir):
    from glue_radiollava.qt.panel import get_panel

    data, viewer = open_image(app, data_dir / LOTSS)
    # the person's own selection must survive
    from glue.core.roi import RectangularROI

    viewer.apply_roi(RectangularROI(10, 50, 10, 50))
    mine = app.data_collection.subset_groups[0]
    mine_state = mine.subset_state
    drag(qtbot, viewer, "radiollava:rectangle", (100.3, 120.3), (180.3, 170.3))
    panel = get_panel(app, create=False)
    assert panel is not None and panel.region is not None
    cut = panel.region.cutout
    assert (cut.x0, cut.y0, cut.shape) == (100, 120, (51, 81))
    expected = np.asarray(data[data.main_components[0]][120:171, 100:181], dtype=np.float32)
    np.testing.assert_array_equal(cut.data, expected)
    labels = [g.label for g in app.data_collection.subset_groups]
    assert labels == [mine.label, "Ask region #1 (radio-llava)"]          # counted per dock
    assert mine.subset_state is mine_state                          # not replaced
    assert app.session.edit_subset_mode.edit_subset == []            # next drag makes a new one
    assert "205." in panel.region_info.text() and "px" in panel.region_info.text()
    assert not panel.preview.pixmap().isNull()


def test_circle_tool_on_a_4d_radio_cube(app, qtbot, data_dir):
    from glue_radiollava.qt.panel import get_panel

    data, viewer = open_image(app, data_dir / PYBDSF)
    assert data.ndim == 4 and viewer.state.x_att.axis == 3
    drag(qtbot, viewer, "radiollava:circle", (64.2, 64.2), (74.2, 64.2))   # radius 10 px
    panel = get_panel(app, create=False)
    cut = panel.region.cutout
    assert (cut.x0, cut.y0, cut.shape) == (54, 54, (21, 21))
    group = app.data_collection.subset_groups[-1]
    assert group.subset_state.xatt is viewer.state.x_att


def tiny_panel(app, qtbot, data_dir, tiny_model_dir, label):
    """The panel with the tiny model loaded through the real thread, asking about a LoTSS region."""
    from glue_radiollava.qt.panel import get_panel

    data, viewer = open_image(app, data_dir / LOTSS)
    panel = get_panel(app)
    panel.model_edit.setText(str(tiny_model_dir))
    panel.quantize_combo.setCurrentText("")
    with qtbot.waitSignal(panel.model_ready, timeout=120000):
        assert panel.load_model()
    assert panel.set_region(viewer, (150, 150, 250, 250), label)
    return data, panel


def test_known_boxes_become_subsets_and_export_to_ds9(app, qtbot, data_dir, tmp_path):
    from regions import Regions

    data, viewer, panel, _ = known_boxes_panel(app, data_dir)
    answer = ask_and_wait(qtbot, panel, task="boxes-extended")
    assert len(answer.boxes) == 2 and "test region" in panel.chat.toPlainText()
    assert "[0.25, 0.75, 0.1, 0.1]" in panel.chat.toPlainText()           # streamed text shown
    groups = app.data_collection.subset_groups[-2:]
    assert [g.label for g in groups] == ["EXTENDED #1 (radio-llava)", "EXTENDED #2 (radio-llava)"]
    roi = groups[0].subset_state.roi
    # north-down picture: v from the top = FITS rows from y0 up; edges at x0 - 0.5 + u * width
    assert (roi.xmin, roi.xmax) == pytest.approx((99.5 + 40, 99.5 + 60))
    assert (roi.ymin, roi.ymax) == pytest.approx((119.5 + 15, 119.5 + 35))
    assert groups[0].style.color.lower() == "#ffa500"                     # EXTENDED: orange
    assert app.session.edit_subset_mode.edit_subset == []
    assert panel.boxes.table.rowCount() == 2
    out = panel.boxes.export_regions(tmp_path / "boxes.reg")
    wcs = data.coords.celestial
    first = Regions.read(out)[0]
    centre = wcs.pixel_to_world(99.5 + 50, 119.5 + 25)
    assert first.center.separation(centre).arcsec < 0.01
    assert "EXTENDED #1 (radio-llava)" in out.read_text()
    before = out.read_bytes()
    assert panel.boxes.export_regions(out) is None and "overwrite=True" in panel.message.text()   # never unasked
    assert out.read_bytes() == before and panel.boxes.export_regions(out, overwrite=True) == out
    table_path = panel.boxes.export_catalogue(tmp_path / "boxes.ecsv")
    from astropy.table import Table

    table = Table.read(table_path)
    assert len(table) == 2 and table["ra"][0] == pytest.approx(centre.ra.deg)


def test_show_hide_delete_and_transcript_round_trip(app, qtbot, data_dir, tmp_path):
    data, viewer, panel, _ = known_boxes_panel(app, data_dir)
    ask_and_wait(qtbot, panel, task="boxes-compact")
    group = panel.boxes.rows[0].group
    layer = next(ls for ls in viewer.state.layers if getattr(ls.layer, "group", None) is group)
    panel.boxes.table.item(0, 0).setCheckState(QtCore.Qt.Unchecked)          # the Show checkbox
    assert layer.visible is False
    panel.boxes.set_visible(0, True)
    assert layer.visible is True
    before = [r.box.pixel_box for r in panel.boxes.rows]
    saved = panel.save_transcript(tmp_path / "session.json")
    doc = json.loads(saved.read_text())
    assert doc["entries"][0]["boxes"][0]["ra"] == pytest.approx(panel.boxes.rows[0].box.ra)
    panel.boxes.delete([0, 1])
    assert panel.boxes.table.rowCount() == 0 and group not in app.data_collection.subset_groups
    assert panel.load_transcript(saved, viewer) == 2
    after = [r.box.pixel_box for r in panel.boxes.rows]
    assert np.allclose(before, after, atol=0.01)
    assert len([g for g in app.data_collection.subset_groups if "COMPACT" in g.label]) == 2
    # a damaged transcript (its second box has no position) changes nothing: all or nothing
    doc["entries"][0]["boxes"][1]["ra"] = float("nan")
    (tmp_path / "damaged.json").write_text(json.dumps(doc))
    chat, rows = panel.chat.toPlainText(), panel.boxes.table.rowCount()
    assert panel.load_transcript(tmp_path / "damaged.json", viewer) == 0
    assert "damaged.json" in panel.message.text() and "box 1" in panel.message.text()
    assert panel.chat.toPlainText() == chat and panel.boxes.table.rowCount() == rows


def test_multi_turn_and_few_shot_reach_the_assistant(app, qtbot, data_dir):
    _, _, panel, fake = known_boxes_panel(app, data_dir, text="FR-II")
    ask_and_wait(qtbot, panel, task="b6-fr-class")
    assert panel.pin_example()
    ask_and_wait(qtbot, panel, question="Are you sure?")
    assert fake.calls[1]["history"][0].answer == "FR-II"
    assert len(fake.calls[1]["examples"]) == 1 and fake.calls[1]["examples"][0].answer == "FR-II"


def test_bad_input_shows_a_message_and_glue_keeps_running(app, qtbot, data_dir, tmp_path):
    from glue.core.roi import RectangularROI
    from glue_radiollava.qt.panel import get_panel
    from glue_radiollava.qt.tools import ask_about_roi

    data, viewer = open_image(app, data_dir / LOTSS)
    n = len(app.data_collection.subset_groups)
    assert ask_about_roi(viewer, RectangularROI(900, 990, 900, 990)) is None
    panel = get_panel(app)
    assert "outside" in panel.message.text()
    assert len(app.data_collection.subset_groups) == n                # nothing created
    # an answer without parsable boxes
    panel.set_assistant(FakeAssistant("I like radio astronomy."))
    panel.set_region(viewer, (100, 100, 160, 160), "r")
    ask_and_wait(qtbot, panel, task="boxes-compact")
    assert "could not parse" in panel.message.text()
    # a model that fails to load
    panel.assistant = None
    panel.model_edit.setText(str(tmp_path / "no-model-here"))
    with qtbot.waitSignal(panel.busy_changed, timeout=60000, check_params_cb=lambda busy: not busy):
        panel.ask(question="hello")
    assert "no such folder" in panel.message.text() and panel.assistant is None
    assert panel.model_status.text() == "no model loaded"


def test_right_click_action_asks_about_an_existing_subset(app, data_dir):
    from glue.core.roi import RectangularROI
    from glue_radiollava.qt.panel import get_panel
    from glue_radiollava.qt.tools import ask_about_subset

    data, viewer = open_image(app, data_dir / SCORPIO)
    viewer.apply_roi(RectangularROI(199.5, 299.5, 399.5, 449.5))
    group = app.data_collection.subset_groups[0]
    ask_about_subset(group, app.data_collection)
    panel = get_panel(app, create=False)
    cut = panel.region.cutout
    assert (cut.x0, cut.y0, cut.shape) == (200, 400, (50, 100)) and panel.region.label == group.label


def test_console_object_scripts_the_panel(app, qtbot, data_dir):
    import glue

    _, viewer, panel, _ = known_boxes_panel(app, data_dir)
    console = glue.env.radiollava
    assert console.panel is panel
    answer = console.ask(task="boxes-compact")
    assert answer is panel.answers[-1] and len(console.regions) == 2 and console.last_answer is answer


def test_console_exports_never_replace_a_file_unasked(app, qtbot, data_dir, tmp_path):
    import glue

    known_boxes_panel(app, data_dir)
    console = glue.env.radiollava
    console.ask(task="boxes-compact")
    out = console.export_catalogue(tmp_path / "boxes.ecsv")
    before = out.read_bytes()
    with pytest.raises(RuntimeError, match="overwrite=True"):
        console.export_catalogue(out)
    assert out.read_bytes() == before and console.export_catalogue(out, overwrite=True) == out


def test_preference_pane_persists_in_glue_settings():
    from glue._settings_helpers import load_settings, save_settings
    from glue.config import CFG_DIR, settings
    from glue_radiollava.qt.preferences import RadioLlavaPreferences

    pane = RadioLlavaPreferences()
    pane.model.setText("/models/radio-llava-7b")
    pane.quantize.setCurrentText("4bit")
    pane.max_new_tokens.setValue(77)
    pane.finalize()
    assert settings.RADIOLLAVA_MODEL == "/models/radio-llava-7b" and settings.RADIOLLAVA_QUANTIZE == "4bit"
    save_settings()
    text = open(os.path.join(CFG_DIR, "settings.cfg")).read()
    assert "radiollava_max_new_tokens = 77" in text.lower()
    settings.reset_defaults()
    load_settings(force=True)
    assert settings.RADIOLLAVA_MAX_NEW_TOKENS == 77
    settings.reset_defaults()


def test_tiny_model_through_the_real_threaded_path(app, qtbot, data_dir, tiny_model_dir):
    _, panel = tiny_panel(app, qtbot, data_dir, tiny_model_dir, "tiny")
    threads = []
    panel.answer_ready.connect(lambda a: threads.append(QtCore.QThread.currentThread()))
    answer = ask_and_wait(qtbot, panel, task="b3-radio-galaxy")
    assert threads == [QtWidgets.QApplication.instance().thread()]     # handled on the GUI thread
    assert answer.text and answer.text[:5] in panel.chat.toPlainText()
    # Stop: cancel a long generation
    from glue_radiollava import settings

    settings.set("RADIOLLAVA_MAX_NEW_TOKENS", 2000)
    try:
        with qtbot.waitSignal(panel.answer_ready, timeout=120000) as blocker:
            panel.ask(question="Describe the image in detail.")
            qtbot.waitUntil(lambda: panel.busy, timeout=5000)
            panel.stop()
        assert blocker.args[0].cancelled and blocker.args[0].timings["new_tokens"] < 2000
    finally:
        settings.set("RADIOLLAVA_MAX_NEW_TOKENS", 256)


def test_demo_screenshot_offscreen(tmp_path, data_dir, tiny_model_dir):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "GLUE_TESTING": "True", "HOME": str(tmp_path)}
    png = tmp_path / "demo.png"
    result = subprocess.run([sys.executable, "-m", "glue_radiollava.cli", "demo", str(data_dir / LOTSS),
                             "--model", str(tiny_model_dir), "--screenshot", str(png), "--quit"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    image = QtGui.QImage(str(png))
    assert image.width() >= 1000 and image.height() >= 600


def test_closing_the_dock_while_generating_cancels_cleanly(app, qtbot, data_dir, tiny_model_dir):
    from glue_radiollava import settings

    data, panel = tiny_panel(app, qtbot, data_dir, tiny_model_dir, "closing")
    settings.set("RADIOLLAVA_MAX_NEW_TOKENS", 4000)
    try:
        panel.ask(question="Describe the image in detail.")
        qtbot.waitUntil(lambda: panel.busy, timeout=5000)
        job = panel.job
        app._radiollava_dock.close()                   # what closing the dock (or glue) does
        assert job.isFinished() and job.cancel_event.is_set()
    finally:
        settings.set("RADIOLLAVA_MAX_NEW_TOKENS", 256)
    QtWidgets.QApplication.processEvents()
    assert app.data_collection[0] is data                  # glue is alive and nothing was lost
