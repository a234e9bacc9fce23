"""``radiollava`` in glue's IPython terminal: script what the panel does.

    radiollava.region(viewer, 100, 100, 200, 200)    # a pixel box of the viewer's image
    answer = radiollava.ask(task="boxes-compact")   # waits for the answer; boxes go on the mosaic
    answer.text, answer.labels, radiollava.regions  # text, labels, astropy Regions of every box
    radiollava.export_regions("boxes.reg")
"""

from __future__ import annotations


class RadioLlavaConsole:
    """The assistant panel of the glue window, for scripting."""

    def __init__(self, panel=None):
        self.panel = panel

    def __repr__(self):
        state = "no panel yet" if self.panel is None else (
            "model loaded" if self.panel.assistant is not None else "no model loaded")
        return f"<radiollava: {state}; try radiollava.region(...), radiollava.ask(...)>"

    def _need_panel(self):
        if self.panel is None:
            raise RuntimeError("open the radio-llava panel first (draw a region with its tools)")
        return self.panel

    @property
    def assistant(self):
        return self._need_panel().assistant

    @property
    def answers(self):
        return list(self._need_panel().answers)

    @property
    def last_answer(self):
        answers = self._need_panel().answers
        return answers[-1] if answers else None

    @property
    def boxes(self):
        return [row.box for row in self._need_panel().boxes.rows]

    @property
    def regions(self):
        """Every box in the table as astropy sky regions."""
        from ..core.skyregions import to_regions

        rows = self._need_panel().boxes.rows
        if not rows:
            from regions import Regions

            return Regions([])
        return to_regions([r.box for r in rows], rows[0].wcs)

    def region(self, viewer, *box, center=None, size="2arcmin", frame="icrs", label="console region"):
        """Ask about a region of the image shown in ``viewer``: the pixel box ``x0, y0, x1, y1``
        ([x0, x1) × [y0, y1)), or a sky ``center`` ("205.12 55.3", "13:40:29 +55:18:00", in
        ``frame``) and ``size`` ("2arcmin"), which becomes a new ask subset as the dock makes."""
        panel = self._need_panel()
        if center is not None:
            if box:
                raise ValueError("give a pixel box or center=…, not both")
            if panel.region_from_text(str(center), str(size), frame, viewer=viewer) is None:
                raise RuntimeError(panel.message.text())
            return True
        if len(box) != 4:
            raise ValueError("give the pixel box as x0, y0, x1, y1 (or center=… and size=…)")
        return panel.set_region(viewer, tuple(box), label)

    def load(self, model=None, wait=True):
        panel = self._need_panel()
        if model:
            panel.model_edit.setText(str(model))
        panel.load_model()
        if wait:
            _wait_for(panel)
        return panel.assistant

    def ask(self, question=None, task=None, wait=True):
        """Ask about the current region; with ``wait`` return the Answer once it is complete."""
        panel = self._need_panel()
        count = len(panel.answers)
        if not panel.ask(question=question, task=task):
            raise RuntimeError(panel.message.text())
        if not wait:
            return None
        _wait_for(panel, lambda: len(panel.answers) > count)
        if len(panel.answers) == count:
            raise RuntimeError(panel.message.text())
        return panel.answers[-1]

    def export_regions(self, path, overwrite: bool = False):
        """Write the dock's boxes as sky regions; an existing file only with ``overwrite=True``."""
        return self._export("export_regions", path, overwrite)

    def export_catalogue(self, path, overwrite: bool = False):
        """Write the dock's boxes as a table (.ecsv, .csv, .fits); an existing file only with ``overwrite=True``."""
        return self._export("export_catalogue", path, overwrite)

    def _export(self, method: str, path, overwrite: bool):
        panel = self._need_panel()
        out = getattr(panel.boxes, method)(path, overwrite=overwrite)
        if out is None:                  # the panel shows why; the console raises it
            raise RuntimeError(panel.message.text())
        return out


def _wait_for(panel, done=None, timeout_s: float = 600):
    """Run the Qt event loop until the panel is idle (and ``done()`` holds, when given)."""
    import time

    from qtpy import QtWidgets

    app = QtWidgets.QApplication.instance()
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        app.processEvents()
        if not panel.busy and not panel.waiting_for_model and (done is None or done()):
            app.processEvents()
            return
        time.sleep(0.01)


CONSOLE = RadioLlavaConsole()


def publish(application, panel):
    """Make ``radiollava`` (this panel) available in glue's IPython terminal."""
    import glue

    CONSOLE.panel = panel
    setattr(glue.env, "radiollava", CONSOLE)
    terminal = getattr(application, "_terminal", None)
    try:
        terminal.widget().update_namespace({"radiollava": CONSOLE})
    except AttributeError:
        pass  # no terminal yet: it reads glue.env when it is created
