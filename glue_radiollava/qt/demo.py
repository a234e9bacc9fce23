"""``radiollava demo``: glue with the plugin, the given FITS files and the assistant panel. With ``--screenshot`` it runs the scripted flow — select a region, ask a
preset box task, overlay the boxes — saves a PNG of the window, and with ``--quit`` exits.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..core.errors import RadioLlavaError


def _ensure_display():
    """No screen (CI, ssh): let Qt draw offscreen instead of failing to connect to X."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def run_demo(files, model: str | None = None, screenshot: str | None = None, quit: bool = False,
             task: str = "boxes-compact", region: tuple[int, int, int, int] | None = None,
             size: tuple[int, int] = (1500, 950)) -> int:
    _ensure_display()
    if screenshot and os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        quit = True  # nobody can see an offscreen window: exit after the screenshot
    if screenshot or quit:  # scripted: glue raises instead of waiting on a modal error dialog
        os.environ.setdefault("GLUE_TESTING", "True")
    from glue.config import settings as glue_settings
    from glue.core.data_factories import load_data
    from glue.core.roi import RectangularROI
    from glue.main import load_plugins
    from glue_qt.app.application import GlueApplication
    from glue_qt.viewers.image import ImageViewer
    from qtpy import QtCore

    from ..core.tasks import get_task
    from ..core.transform import index_box_to_edges
    from .panel import get_panel
    from .tools import ask_about_roi

    get_task(task)
    paths = [Path(f) for f in files]
    if not paths:
        raise RadioLlavaError("give at least one FITS image to open")
    for p in paths:
        if not p.is_file():
            raise RadioLlavaError(f"{p}: no such file")
    if screenshot and not Path(screenshot).resolve().parent.is_dir():
        raise RadioLlavaError(f"{screenshot}: its folder does not exist")
    load_plugins()
    glue_settings.AUTOLINK["Astronomy WCS"] = "always_accept"   # no autolink dialog for several images
    app = GlueApplication()
    datasets = []
    for p in paths:
        try:
            loaded = load_data(str(p))
        except Exception as exc:
            raise RadioLlavaError(f"{p}: glue cannot open it ({str(exc).splitlines()[0][:200]})") from None
        loaded = loaded if isinstance(loaded, list) else [loaded]
        app.data_collection.extend(loaded)
        datasets.extend(loaded)
    viewer = app.new_data_viewer(ImageViewer, data=datasets[0])
    viewer.parentWidget().showMaximized()           # the image fills its tab
    panel = get_panel(app)
    if model:
        panel.model_edit.setText(model)
    outcome = {"code": 0}

    def finish(code: int, message: str = ""):
        if message:
            print(message, file=sys.stderr if code else sys.stdout)
        if screenshot:
            viewer.figure.canvas.draw()
            app.app.processEvents()
            app.screenshot(screenshot)
            print(f"wrote {screenshot}")
        outcome["code"] = code
        if quit:
            qapp = app.app
            app.close()
            qapp.exit(code)

    def scripted_flow():
        data = viewer.state.reference_data
        ny, nx = data.shape[-2:]
        x0, y0, x1, y1 = region or (nx // 4, ny // 4, nx // 4 + nx // 2, ny // 4 + ny // 2)
        X0, Y0, X1, Y1 = index_box_to_edges(x0, y0, x1, y1)
        roi = RectangularROI(xmin=X0, xmax=X1, ymin=Y0, ymax=Y1)
        if ask_about_roi(viewer, roi) is None or not panel.ask(task=task):
            finish(1, f"radiollava demo: {panel.message.text()}")
            return
        count = len(panel.answers)
        poll = QtCore.QTimer(app)

        def check():
            if len(panel.answers) > count:
                poll.stop()
                answer = panel.answers[-1]
                finish(0, f"{task}: {answer.text[:200]!r} → {len(answer.boxes)} box(es) on the mosaic")
            elif not panel.busy and not panel.waiting_for_model:
                poll.stop()
                finish(1, f"radiollava demo: {panel.message.text()}")

        poll.timeout.connect(check)
        poll.start(100)

    if screenshot:
        QtCore.QTimer.singleShot(300, scripted_flow)
    elif quit:
        QtCore.QTimer.singleShot(300, lambda: finish(0))
    app.start(size=size, maximized=False)
    return outcome["code"]
