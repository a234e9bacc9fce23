"""What the Scan and Find-more-like-this sections of the panel share.

``TileSection`` is a collapsible group box (folded at first; it unfolds when it starts work) that runs one tile job at a time with the panel's model:
a tile-size box that follows the loaded model until the user sets it, a progress bar counted in
tiles, Stop, and a status line. Subclasses lay out their own controls around these in
``_build_ui`` (on ``self.grid``) and name the buttons that start work in ``start_buttons``.
"""

from __future__ import annotations

from qtpy import QtCore, QtWidgets

from ..core.errors import RadioLlavaError
from ..core.models import NANO
from .workers import Job

NANO_TILE, DEFAULT_TILE = 64, 128


def default_tile(model: str | None) -> int:
    """64 px for the embedded nano model (small tiles: few sources per answer), 128 px otherwise (the CLI's default)."""
    return NANO_TILE if (model or NANO) == NANO else DEFAULT_TILE


def tiling_error(exc: RadioLlavaError) -> RadioLlavaError:
    """The core's tiling message, worded for the panel."""
    return RadioLlavaError(str(exc).replace("use --tile", "set the tile to"))


class TileJob(Job):
    """A Job that also reports (done, total) tiles."""

    progress = QtCore.Signal(int, int)


class TileSection(QtWidgets.QGroupBox):
    def __init__(self, title: str, panel, parent=None):
        super().__init__(title, parent)
        self.panel = panel
        self.job: TileJob | None = None
        self._tile_chosen = False
        self.setCheckable(True)
        self.setChecked(True)
        outer = QtWidgets.QVBoxLayout(self)
        self.body = QtWidgets.QWidget()
        self.toggled.connect(self.body.setVisible)
        outer.addWidget(self.body)
        self.grid = QtWidgets.QGridLayout(self.body)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.tile_spin = QtWidgets.QSpinBox()
        self.tile_spin.setRange(8, 4096)
        self.tile_spin.setSuffix(" px")
        self.tile_spin.setValue(default_tile(panel.current_spec().model))
        self.tile_spin.valueChanged.connect(self._on_tile_chosen)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("no run yet")
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self._build_ui()
        panel.busy_changed.connect(self._on_busy)
        panel.model_ready.connect(self._on_model_ready)

    def _build_ui(self):
        raise NotImplementedError

    def start_buttons(self) -> list:
        """The buttons that start work (disabled while the panel is busy)."""
        return []

    def stopping_text(self) -> str:
        return "stopping after this batch …"

    def stop(self):
        """Ask the running job to stop after its current batch."""
        if self.job is not None and self.job.isRunning():
            self.job.cancel()
            self.status.setText(self.stopping_text())

    def _new_job(self, work, name: str) -> TileJob:
        self.setChecked(True)           # a folded section unfolds to show its progress and Stop
        show = getattr(self.panel, "show_section", None)
        if show is not None:
            show(self)
        job = TileJob(work, name=name, parent=self.panel)
        job.on(job.progress, self._on_progress)
        return job

    def _on_tile_chosen(self, _value):
        self._tile_chosen = True

    def _on_model_ready(self, assistant):
        if not self._tile_chosen:
            spec = getattr(getattr(assistant, "loaded", None), "spec", None)
            self.tile_spin.blockSignals(True)
            self.tile_spin.setValue(default_tile(getattr(spec, "model", None)))
            self.tile_spin.blockSignals(False)

    def _on_busy(self, busy: bool):
        for button in self.start_buttons():
            button.setEnabled(not busy)
        if not busy:
            self.stop_button.setEnabled(False)

    def _on_progress(self, done: int, total: int):
        self.progress.setFormat("%v / %m tiles")
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
