"""Helpers for the plugin tests (the GlueApplication fixture ``app`` is in conftest.py)."""

from __future__ import annotations

from glue_radiollava.core.assistant import Assistant
from glue_radiollava.core.models import FAMILIES
from glue_radiollava.core.profiles import get_profile

LOTSS = "lotss_dr1/P205+55-mosaic.fits"
SCORPIO = "scorpio_atca/ScorpioS17Field.fits"
PYBDSF = "misc/pybdsf_test_ch0_I.fits"


def open_image(app, path):
    """Load a FITS file into ``app`` and show it in a maximised image viewer → (data, viewer)."""
    from glue.core.data_factories import load_data
    from glue_qt.viewers.image import ImageViewer
    from qtpy import QtWidgets

    data = load_data(str(path))
    app.data_collection.append(data)
    viewer = app.new_data_viewer(ImageViewer, data=data)
    viewer.parentWidget().showMaximized()
    QtWidgets.QApplication.processEvents()
    viewer.figure.canvas.draw()
    return data, viewer


class _FakeLoaded:
    """Just what Assistant needs of a loaded model to parse answers and write provenance."""

    family = FAMILIES["llava_onevision"]
    box_convention = "yolo"
    profile = get_profile("radio-llava")
    device, dtype, load_s, folder = "cpu", "fp32", 0.0, "fake"

    def provenance(self):
        return {"spec": "fake", "family": "llava_onevision", "sha256": "0" * 64}

    def view_transform(self, view):
        return view.transform


class FakeAssistant(Assistant):
    """Answers with fixed text, streamed word by word, through the real parser and Transform."""

    def __init__(self, text: str):
        self.loaded = _FakeLoaded()
        self.system_prompt = None
        self.text = text
        self.calls = []

    def ask(self, view, question=None, task=None, history=(), examples=(), on_text=None, cancel=None, **kw):
        question, task = self.question_for(question, task)
        self.calls.append({"question": question, "history": list(history), "examples": list(examples)})
        for word in self.text.split(" "):
            if on_text:
                on_text(word + " ")
        return self.answer_for(view, question, task, self.text, False, {"generate_s": 0.0, "new_tokens": 3})


def known_boxes_panel(app, data_dir, text="[0.5, 0.5, 0.2, 0.4], [0.25, 0.75, 0.1, 0.1]", path=LOTSS):
    from glue_radiollava.qt.panel import get_panel

    data, viewer = open_image(app, data_dir / path)
    panel = get_panel(app)
    fake = FakeAssistant(text)
    panel.set_assistant(fake)
    assert panel.set_region(viewer, (100, 120, 200, 170), "test region")   # 100 × 50 px
    return data, viewer, panel, fake


def ask_and_wait(qtbot, panel, **kw):
    with qtbot.waitSignal(panel.answer_ready, timeout=120000) as blocker:
        assert panel.ask(**kw)
    return blocker.args[0]
