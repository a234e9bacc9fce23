"""The dock as a radio astronomer uses it (issue 15), in a real GlueApplication, offscreen: the task
menu, tasks asked on the region alone, regions by typed coordinates and region files, statistics,
the wheel, the export buttons, folded sections, the default radio stretch and the toolbar order."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qtpy import QtCore, QtGui, QtWidgets  # noqa: E402

from glue_helpers import LOTSS, FakeAssistant, ask_and_wait, known_boxes_panel, open_image  # noqa: E402


def _choose_task(panel, name):
    panel.task_combo.setCurrentIndex(panel.task_combo.findData(name))


def test_the_task_picked_from_the_menu_is_what_gets_asked(app, qtbot, data_dir):
    from glue_radiollava.core.tasks import get_task

    _, _, panel, fake = known_boxes_panel(app, data_dir, text="No")
    qtbot.keyClicks(panel.question_edit, "What is the brightest source?")
    _choose_task(panel, "blank-border")
    assert panel.question_edit.text() == get_task("blank-border").prompt      # the box shows it
    with qtbot.waitSignal(panel.answer_ready, timeout=10000):
        assert panel.ask()
    assert fake.calls[-1]["question"] == get_task("blank-border").prompt
    assert panel.answers[-1].task == "blank-border"
    qtbot.keyClicks(panel.question_edit, " Really?")               # editing makes it a free question
    assert panel.task_combo.currentData() is None
    with qtbot.waitSignal(panel.answer_ready, timeout=10000):
        assert panel.ask()
    assert panel.answers[-1].task is None and fake.calls[-1]["question"].endswith("Really?")


def test_tasks_see_the_region_alone_unless_follow_up(app, qtbot, data_dir, tmp_path):
    import json

    _, _, panel, fake = known_boxes_panel(app, data_dir, text="EXTENDED")
    ask_and_wait(qtbot, panel, question="Describe the region.")
    ask_and_wait(qtbot, panel, question="And the brightest source?")
    assert len(fake.calls[-1]["history"]) == 1                     # free questions keep the conversation
    ask_and_wait(qtbot, panel, task="b3-radio-galaxy")
    assert fake.calls[-1]["history"] == []                         # a preset: as the benchmarks ask it
    assert "(region alone)" in panel.chat.toPlainText()
    panel.follow_up.setChecked(True)
    ask_and_wait(qtbot, panel, task="b3-radio-galaxy")
    assert len(fake.calls[-1]["history"]) == 3
    out = panel.save_transcript(tmp_path / "t.json")
    entries = json.loads(out.read_text())["entries"]
    assert [e["conversation"] for e in entries[2:]] == [{"follow_up": False, "earlier_turns": 0},
                                                        {"follow_up": True, "earlier_turns": 3}]


def test_a_typed_centre_and_size_make_a_new_ask_subset(app, qtbot, data_dir):
    from astropy.coordinates import SkyCoord
    from glue.core.roi import RectangularROI

    from glue_radiollava.qt.panel import get_panel

    data, viewer = open_image(app, data_dir / LOTSS)
    viewer.apply_roi(RectangularROI(10, 50, 10, 50))
    mine = app.data_collection.subset_groups[0]
    mine_state = mine.subset_state
    panel = get_panel(app)
    target = data.coords.celestial.pixel_to_world(300.2, 250.3)       # not on a rounding edge
    centre = target.to_string("hmsdms", sep=":", precision=2)
    panel.centre_edit.setText(centre)
    panel.size_edit.setText("3arcmin")
    group = panel.region_from_text()
    assert group is not None and group.label == f"{centre} 3arcmin (radio-llava)"
    assert app.data_collection.subset_groups[-1] is group and mine.subset_state is mine_state
    cut = panel.region.cutout
    sep = cut.center_sky.separation(target).arcsec
    assert sep < 1.5 * max(cut.image.pixel_scale_arcsec)                # within a pixel and a half
    assert cut.size_arcsec[0] == pytest.approx(180, abs=2 * cut.image.pixel_scale_arcsec[0])
    # the same place typed in galactic degrees gives the same cutout
    gal = SkyCoord(target).galactic
    panel.region_from_text(f"{gal.l.deg:.6f} {gal.b.deg:.6f}", "3arcmin", "galactic")
    assert (panel.region.cutout.x0, panel.region.cutout.y0) == (cut.x0, cut.y0)
    assert group.style.color.lower() == "#ff3ea5" and group.style.linewidth == 3   # seen on noise
    assert panel.region_from_text("not a place", "3arcmin") is None
    assert "is not a sky position" in panel.message.text()


def test_a_region_file_makes_a_new_ask_subset_of_its_shape(app, qtbot, data_dir, tmp_path):
    import astropy.units as u
    from glue.core.roi import CircularROI
    from regions import CircleSkyRegion, PointSkyRegion, Regions

    from glue_radiollava.qt.panel import get_panel

    data, viewer = open_image(app, data_dir / LOTSS)
    panel = get_panel(app)
    centre = data.coords.celestial.pixel_to_world(200, 180)
    path = tmp_path / "target.reg"
    Regions([PointSkyRegion(centre), CircleSkyRegion(centre, 40 * u.arcsec)]).write(str(path), format="ds9")
    before = len(app.data_collection.subset_groups)
    group = panel.region_from_file(path)
    assert group is not None and len(app.data_collection.subset_groups) == before + 1
    roi = group.subset_state.roi
    assert isinstance(roi, CircularROI) and (roi.xc, roi.yc) == pytest.approx((200, 180), abs=0.01)
    scale = panel.region.cutout.image.pixel_scale_arcsec[0]
    assert roi.radius == pytest.approx(40 / scale, rel=1e-3)
    assert "read Circle from target.reg" in panel.message.text()
    bad = tmp_path / "bad.reg"
    bad.write_text("this is not a region file\n")
    assert panel.region_from_file(bad) is None and "bad.reg" in panel.message.text()


def test_region_statistics_beside_the_preview(app, qtbot, data_dir):
    _, _, panel, _ = known_boxes_panel(app, data_dir)
    text = panel.region_info.text()
    for word in ("peak", "rms", "flux", "Jy", "beam", "across"):
        assert word in text, text
    assert panel.region_box.title() == "Region — preview as the model sees it, north down"


def _wheel(widget):
    centre = QtCore.QPointF(widget.width() / 2, widget.height() / 2)
    event = QtGui.QWheelEvent(centre, widget.mapToGlobal(centre.toPoint()), QtCore.QPoint(0, 0),
                              QtCore.QPoint(0, 120), QtCore.Qt.NoButton, QtCore.Qt.NoModifier,
                              QtCore.Qt.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(widget, event)


def test_the_wheel_changes_spin_boxes_and_combos_only_when_focused(app, qtbot):
    from glue_radiollava.qt.panel import get_panel

    panel = get_panel(app)
    spin = panel.scan_section.tile_spin
    panel.show_section(panel.scan_section)
    combo = panel.task_combo
    tile, index = spin.value(), combo.currentIndex()
    _wheel(spin)
    _wheel(combo)
    assert (spin.value(), combo.currentIndex()) == (tile, index)
    assert spin.focusPolicy() == QtCore.Qt.StrongFocus
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=2000)
    _wheel(spin)
    assert spin.value() != tile                                         # focused: the wheel works


def test_export_buttons_follow_the_boxes_and_sections_fold(app, qtbot, data_dir):
    _, _, panel, _ = known_boxes_panel(app, data_dir)
    buttons = (panel.boxes.export_regions_button, panel.boxes.export_table_button, panel.boxes.delete_button)
    assert not any(b.isEnabled() for b in buttons) and not panel.save_transcript_action.isEnabled()
    ask_and_wait(qtbot, panel, task="boxes-extended")
    assert all(b.isEnabled() for b in buttons) and panel.save_transcript_action.isEnabled()
    panel.boxes.delete([0, 1])
    assert not any(b.isEnabled() for b in buttons)
    assert panel.scan_section.progress.text() == "no run yet"          # not "0 / 1 tiles"
    assert panel.lower_tabs.tabText(0) == "Boxes" and panel.lower_tabs.currentIndex() == 0
    assert not panel.model_box.isChecked() and "fake" in panel.model_box.title()   # folded once loaded
    # the dock's scroll area shrinks the panel to its minimum before it scrolls: all of it, the
    # chat and the boxes included, fits the height a 1366 × 768 laptop leaves below glue's bars
    assert panel.minimumSizeHint().height() <= 768 - 60
    app.resize(1366, 720)                           # glue on a laptop screen, less the desktop's bars
    for _ in range(5):
        QtWidgets.QApplication.processEvents()
    scroll = app._radiollava_dock.widget()
    assert scroll.verticalScrollBar().maximum() == 0, "the dock scrolls on a 1366 × 768 screen"
    assert panel.boxes.table.isVisible() and panel.chat.height() >= 64
    layout = panel.layout()
    assert layout.itemAt(0).widget() is panel.message                   # messages at the top


def test_errors_reach_the_top_and_glue_status_bar(app, qtbot):
    from glue_radiollava.qt.panel import get_panel

    panel = get_panel(app)
    assert not panel.ask(question="hello")
    assert "no region yet" in panel.message.text()
    assert "no region yet" in app.statusBar().currentMessage()


def test_a_radio_image_opens_with_a_radio_stretch(app, qtbot, data_dir, synthetic_fits, tmp_path):
    from astropy.io import fits

    data, viewer = open_image(app, data_dir / LOTSS)
    qtbot.waitUntil(lambda: viewer.state.layers[0].stretch == "arcsinh", timeout=3000)
    assert viewer.state.layers[0].percentile == 99.5
    viewer.state.layers[0].stretch = "linear"                          # the person's choice stays
    QtWidgets.QApplication.processEvents()
    assert viewer.state.layers[0].stretch == "linear"
    plain = tmp_path / "optical.fits"                                   # no beam, no per-beam unit
    fits.writeto(plain, np.random.default_rng(0).normal(size=(60, 60)).astype("f4"))
    _, other = open_image(app, plain)
    QtWidgets.QApplication.processEvents()
    assert (other.state.layers[0].stretch, other.state.layers[0].percentile) == ("linear", 100)


def test_both_ask_tools_come_first_in_the_toolbar(app, data_dir):
    _, viewer = open_image(app, data_dir / LOTSS)
    ids = [t for t in viewer.toolbar.tools if t not in ("save", "window")]     # glue's menus, not tools
    first_image_tool = min(ids.index(t) for t in ids if not t.startswith("mpl:"))
    assert ids[first_image_tool:first_image_tool + 2] == ["radiollava:rectangle", "radiollava:circle"]


def test_the_console_region_takes_sky_coordinates(app, qtbot, data_dir):
    import glue

    from glue_radiollava.qt.panel import get_panel

    data, viewer = open_image(app, data_dir / LOTSS)
    get_panel(app)
    target = data.coords.celestial.pixel_to_world(150, 160)
    assert glue.env.radiollava.region(viewer, center=f"{target.ra.deg} {target.dec.deg}", size="90arcsec")
    panel = get_panel(app)
    assert panel.region.cutout.center_sky.separation(target).arcsec < 6
    with pytest.raises(ValueError, match="pixel box"):
        glue.env.radiollava.region(viewer, 1, 2)


def test_an_answer_about_another_class_is_shown_as_a_problem(app, qtbot, data_dir):
    from glue_radiollava.core.tasks import get_task

    _, _, panel, _ = known_boxes_panel(app, data_dir, text=get_task("boxes-spurious").negative_answer)
    answer = ask_and_wait(qtbot, panel, task="boxes-compact")
    assert answer.parsed.unparsed and not answer.boxes
    assert "another class" in panel.message.text() and "color: #c0392b" in panel.message.styleSheet()
