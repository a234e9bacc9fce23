"""The "Find more like this" section of the glue plugin, offscreen, in a real GlueApplication.

The simulated 512² mosaic is opened in an image viewer, a region is drawn around its brightest
compact source through the radio-llava tool's action, and the embedded nano model (loaded by the
panel itself) ranks the mosaic's tiles; the tiny model drives the text search.
"""

from __future__ import annotations

import os
import threading

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from glue_helpers import open_image  # noqa: E402

TOP = 10


@pytest.fixture(scope="module")
def nano():
    from glue_radiollava.core.assistant import Assistant

    return Assistant("nano")


def brightest_compact(truth):
    return max((o for o in truth if o["class"] == "COMPACT"), key=lambda o: o["peak_snr"])


def similar_panel(app, sim_mosaic, tmp_path, select=True):
    """The panel and its section on the mosaic; a 64 px region drawn around the brightest compact
    source with the radio-llava rectangle tool's action."""
    from glue.core.roi import RectangularROI
    from glue_radiollava.qt.panel import get_panel
    from glue_radiollava.qt.tools import ask_about_roi

    data, viewer = open_image(app, sim_mosaic[0])
    panel = get_panel(app)
    section = panel.similar_section
    section.cache_dir = tmp_path / "index"
    if select:
        o = brightest_compact(sim_mosaic[1])
        x, y = round(o["x"]), round(o["y"])
        assert ask_about_roi(viewer, RectangularROI(x - 32.5, x + 31.5, y - 32.5, y + 31.5)) is panel
        assert panel.region.cutout.shape == (64, 64)
    return data, viewer, panel, section


def run_and_wait(qtbot, section, start, timeout=60000):
    with qtbot.waitSignal(section.search_finished, timeout=timeout) as blocker:
        assert start()
    return blocker.args[0]


def overlap_fraction(pixel_box, cutout):
    X0, Y0, X1, Y1 = pixel_box
    ny, nx = cutout.shape
    qx0, qy0 = cutout.x0 - 0.5, cutout.y0 - 0.5
    ix = max(0.0, min(X1, qx0 + nx) - max(X0, qx0))
    iy = max(0.0, min(Y1, qy0 + ny) - max(Y0, qy0))
    return ix * iy / ((X1 - X0) * (Y1 - Y0))


def scores(section):
    return [float(section.results.item(r, 1).text()) for r in range(section.results.rowCount())]


def test_find_more_like_this_with_nano_marks_source_tiles_and_uses_the_cache(app, qtbot, sim_mosaic,
                                                                          tmp_path):
    from astropy.table import Table
    from regions import Regions

    from glue_radiollava.qt.rois import BoxesROI

    data, viewer, panel, section = similar_panel(app, sim_mosaic, tmp_path)
    panel.model_edit.setText("nano")
    assert panel.assistant is None
    result = run_and_wait(qtbot, section, section.find_similar)      # the model is loaded first
    assert panel.assistant is not None and section.tile_spin.value() == 64
    assert not result.from_cache and result.index_path.parent == tmp_path / "index"
    assert result.index_path.exists() and "built" in section.status.text()
    assert str(result.index_path) in section.status.text()
    # one subset group of K boxes on the image, coloured
    group = result.group
    assert group in app.data_collection.subset_groups and group.label == f"similar (top {TOP})"
    roi = group.subset_state.roi
    assert isinstance(roi, BoxesROI) and len(roi.boxes) == TOP
    assert group.style.color.lower() == "#ffd700"
    mask = next(s for s in group.subsets if s.data is data).to_mask()
    X0, Y0, X1, Y1 = result.matches[0].pixel_box
    assert mask[int((Y0 + Y1) / 2), int((X0 + X1) / 2)] and mask.sum() < mask.size / 2
    # K rows, best first; the query's own tile is left out
    assert section.results.rowCount() == TOP
    assert scores(section) == sorted(scores(section), reverse=True)
    assert all(overlap_fraction(m.pixel_box, panel.region.cutout) <= 0.5 for m in result.matches)
    # nano's index ranks tiles with sources above blank sky
    truth = sim_mosaic[1]
    holding = [any(b.pixel_box[0] <= o["x"] < b.pixel_box[2] and b.pixel_box[1] <= o["y"] < b.pixel_box[3]
                   for o in truth) for b in result.matches]
    assert sum(holding) >= 6
    # selecting a row centres the viewer on that tile and keeps the zoom
    width = viewer.state.x_max - viewer.state.x_min
    section.results.selectRow(2)
    X0, Y0, X1, Y1 = result.matches[2].pixel_box
    assert (viewer.state.x_min + viewer.state.x_max) / 2 == pytest.approx((X0 + X1) / 2, abs=0.5)
    assert (viewer.state.y_min + viewer.state.y_max) / 2 == pytest.approx((Y0 + Y1) / 2, abs=0.5)
    assert viewer.state.x_max - viewer.state.x_min == pytest.approx(width, rel=0.02)
    # export: DS9 regions and a table with the rank
    reg = section.export_results(tmp_path / "similar.reg")
    assert len(Regions.read(reg, format="ds9")) == TOP and f"wrote {TOP} tiles" in panel.message.text()
    table = Table.read(section.export_results(tmp_path / "similar.ecsv"))
    assert list(table["rank"]) == list(range(1, TOP + 1)) and list(table["class"]) == ["similar"] * TOP
    assert section.export_results(tmp_path / "similar.txt") is None and ".reg" in panel.message.text()
    # again: the index comes from the cache, the ranking is the same
    again = run_and_wait(qtbot, section, section.find_similar)
    assert again.from_cache and again.index_path == result.index_path
    assert "from the cache" in section.status.text()
    assert again.group.label == f"similar #2 (top {TOP})"
    assert [m.pixel_box for m in again.matches] == [m.pixel_box for m in result.matches]
    assert not panel.busy and section.find_button.isEnabled()


def test_text_search_with_the_tiny_model_and_stop(app, qtbot, sim_mosaic, tmp_path, tiny_model_dir,
                                                  monkeypatch):
    data, viewer, panel, section = similar_panel(app, sim_mosaic, tmp_path, select=False)
    panel.model_edit.setText(str(tiny_model_dir))
    section.top_spin.setValue(5)
    section.text_edit.setText("a bright compact source with faint jets")
    result = run_and_wait(qtbot, section, section.search_text, timeout=120000)
    assert section.tile_spin.value() == 128 and not result.stopped and result.done == result.total == 25
    assert section.results.rowCount() == 5
    probs = scores(section)
    assert all(0 <= p <= 1 for p in probs) and probs == sorted(probs, reverse=True)
    assert result.group.label == "text: a bright compact source … (top 5)"
    assert len(result.group.subset_state.roi.boxes) == 5
    assert "Does this image contain a bright compact source with faint jets?" in section.status.text()
    # Stop: the tiles asked so far are ranked and shown
    section.batch_size = 8
    paused, go, real = threading.Event(), threading.Event(), panel.assistant.score_batch

    def score_batch(*args, **kw):                          # the second batch waits for Stop
        score_batch.calls += 1
        if score_batch.calls == 2:
            paused.set()
            assert go.wait(20)
        return real(*args, **kw)

    score_batch.calls = 0
    monkeypatch.setattr(panel.assistant, "score_batch", score_batch)
    with qtbot.waitSignal(section.search_finished, timeout=60000) as blocker:
        assert section.search_text("an extended radio galaxy")
        qtbot.waitUntil(paused.is_set, timeout=10000)
        section.stop_button.click()
        go.set()
    stopped = blocker.args[0]
    assert stopped.stopped and (stopped.done, stopped.total) == (16, 25) and len(stopped.matches) == 5
    assert "stopped after 16/25 tiles" in section.status.text() and "stopped" in panel.message.text()
    assert section.results.rowCount() == 5
    assert stopped.group.label == "text: an extended radio galaxy #2 (top 5)"


def test_without_a_region_it_says_so_in_one_line(app, qtbot, sim_mosaic, tmp_path):
    data, viewer, panel, section = similar_panel(app, sim_mosaic, tmp_path, select=False)
    groups = len(app.data_collection.subset_groups)
    assert section.find_similar() is False
    message = panel.message.text()
    assert "no region" in message and "\n" not in message
    assert not panel.busy and panel.assistant is None           # nothing was loaded for it
    section.text_edit.setText("  ")
    assert section.search_text() is False and "give a description" in panel.message.text()
    assert len(app.data_collection.subset_groups) == groups


def test_stop_while_building_the_index(app, qtbot, sim_mosaic, tmp_path, nano, monkeypatch):
    from glue_radiollava.core import similar

    data, viewer, panel, section = similar_panel(app, sim_mosaic, tmp_path)
    panel.set_assistant(nano)
    paused, go, real = threading.Event(), threading.Event(), similar.embed_cutouts

    def embed(assistant, cutouts, batch_size=32):          # the second batch waits for Stop
        embed.calls += 1
        if embed.calls == 2:
            paused.set()
            assert go.wait(20)
        return real(assistant, cutouts, batch_size)

    embed.calls = 0
    monkeypatch.setattr(similar, "embed_cutouts", embed)
    groups = len(app.data_collection.subset_groups)
    with qtbot.waitSignal(panel.busy_changed, timeout=30000, check_params_cb=lambda busy: not busy):
        assert section.find_similar()
        qtbot.waitUntil(paused.is_set, timeout=10000)
        assert panel.busy and section.stop_button.isEnabled() and not section.search_button.isEnabled()
        assert section.find_similar() is False                 # one model job at a time
        section.stop_button.click()
        go.set()
    message = panel.message.text()
    assert "stopped" in message and "\n" not in message
    assert "stopped" in section.status.text()
    assert len(app.data_collection.subset_groups) == groups and section.results.rowCount() == 0
    assert not list((tmp_path / "index").glob("*.npz"))       # nothing was cached
    assert section.find_button.isEnabled() and not section.stop_button.isEnabled()
