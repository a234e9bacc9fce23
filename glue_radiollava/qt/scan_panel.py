"""The Scan section of the assistant panel: box tasks over every tile of the view or the image.

The scan itself is ``core.scan`` (tiles, batched box tasks, merging across overlaps, a journal)
running in a ``sections.TileJob`` thread with the panel's loaded model; its progress comes back as a
queued signal. When it finishes, or is stopped, the merged boxes become

- a glue table (ra, dec, width, height, class, score, tile, task) linked to the image's world
  coordinates, so it can be plotted and selected in any viewer, and
- one subset per class on the image ("COMPACT (scan)"), a single ``BoxesROI`` each, so a few
  hundred boxes stay quick to draw.

Every finished batch is in the journal under ``~/.cache/glue-radiollava/scans/`` (the catalogue is
written next to it at the end), so a crash of glue loses nothing already scanned.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from qtpy import QtCore, QtWidgets

from ..core.errors import RadioLlavaError
from ..core.skyregions import colour_for
from . import glue_data
from .rois import BoxesROI
from .sections import TileSection, tiling_error

DEFAULT_TASKS = ("boxes-compact", "boxes-extended")
TAG = "scan"


def scans_folder() -> Path:
    return Path.home() / ".cache" / "glue-radiollava" / "scans"


def scan_output(folder: Path, stem: str) -> Path:
    """A fresh catalogue path ``<stem>-<timestamp>.ecsv`` in ``folder`` (its journal sits beside it)."""
    from ..core.scan import journal_path

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem).strip("._") or "image"
    base = f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, n = folder / f"{base}.ecsv", 1
    while out.exists() or journal_path(out).exists():
        n += 1
        out = folder / f"{base}-{n}.ecsv"
    return out


def view_bounds(viewer, shape) -> tuple[int, int, int, int]:
    """The pixels whose centres the viewer shows, ``(x0, y0, x1, y1)`` (x1/y1 exclusive), clipped."""
    s = viewer.state
    ny, nx = shape
    x0, x1 = sorted((s.x_min, s.x_max))
    y0, y1 = sorted((s.y_min, s.y_max))
    box = (max(0, math.ceil(x0)), max(0, math.ceil(y0)),
           min(nx, math.floor(x1) + 1), min(ny, math.floor(y1) + 1))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise RadioLlavaError("the view shows no part of the image; pan back onto it or scan the whole image")
    return box


# ================================================================ results → glue
def scan_table(result, label: str):
    """The merged detections as a glue table: ra, dec (deg), width, height (arcsec), class, …"""
    from glue.core import Data
    from glue.core.component import CategoricalComponent, Component

    dets = result.detections

    def column(values, units=None):
        return Component(np.asarray(values, float), units=units)

    columns = {
        "ra": column([d.box.ra for d in dets], "deg"),
        "dec": column([d.box.dec for d in dets], "deg"),
        "width": column([d.box.width_arcsec for d in dets], "arcsec"),
        "height": column([d.box.height_arcsec for d in dets], "arcsec"),
        "class": CategoricalComponent(np.array([d.box.label or "BOX" for d in dets])),
        "score": column([np.nan if d.box.score is None else d.box.score for d in dets]),
        "tile": Component(np.array([d.tile for d in dets], int)),
        "task": CategoricalComponent(np.array([d.task for d in dets])),
    }
    data = Data(label=label)
    for name, component in columns.items():
        data.add_component(component, name)
    return data


def celestial_world_ids(data):
    """The image's (longitude, latitude) world component ids, in the order of its WCS."""
    wcs = getattr(data, "coords", None)
    axes = getattr(getattr(wcs, "wcs", None), "lng", -1), getattr(getattr(wcs, "wcs", None), "lat", -1)
    if min(axes) < 0:
        raise RadioLlavaError(f"{data.label} has no celestial WCS axes to link a catalogue to")
    ids = data.world_component_ids
    return tuple(ids[data.ndim - 1 - axis] for axis in axes)


def link_to_image(data_collection, table, image_data) -> list:
    """Link the table's ra/dec to the image's longitude/latitude (identity links)."""
    from glue.core.link_helpers import LinkSame

    lon, lat = celestial_world_ids(image_data)
    links = [LinkSame(table.id["ra"], lon), LinkSame(table.id["dec"], lat)]
    data_collection.add_link(links)
    return links


def add_class_subsets(session, x_att, y_att, detections, tag: str = TAG) -> list:
    """One subset group per class, labelled like "COMPACT (scan)" and coloured by class."""
    by_class = defaultdict(list)
    for d in detections:
        X0, Y0, X1, Y1 = d.box.pixel_box
        by_class[d.box.label or "BOX"].append((X0, X1, Y0, Y1))
    return [glue_data.new_subset(session, x_att, y_att, BoxesROI(boxes), f"{label} ({tag})",
                                 colour_for(label)) for label, boxes in sorted(by_class.items())]


# ================================================================ the scan
@dataclass
class ScanRequest:
    """What one scan covers: the viewer's image, the tiles and where the results go."""

    data: object                 # glue Data of the image
    x_att: object
    y_att: object
    image: object                # core RadioImage
    bounds: tuple
    tiles: list
    tasks: list
    tile: int
    overlap: float
    out: Path                    # the catalogue; the journal is journal_path(out)
    resume: bool = False         # continue the journal already there

    @property
    def journal(self) -> Path:
        from ..core.scan import journal_path

        return journal_path(self.out)

    @property
    def settings(self) -> dict:
        """What the journal's header records (a resumed scan must match it)."""
        return {"tile": self.tile, "overlap": self.overlap, "bounds": list(self.bounds), "tasks": self.tasks}

    @property
    def meta(self) -> dict:
        """The catalogue's header keywords."""
        return {"IMAGE": self.data.label, "TASKS": ",".join(self.tasks), "TILE": self.tile,
                "OVERLAP": self.overlap, "BOUNDS": ",".join(map(str, self.bounds))}


class ScanSection(TileSection):
    """Scan this view / the whole image with box tasks; results become a linked table and subsets.

    ``detector_factory(assistant, tasks)``: when set, builds the detector instead of
    ``core.scan.AssistantDetector`` (tests, other finders); no model is loaded for it.
    """

    scan_finished = QtCore.Signal(object)     # the ScanResult, after its table and subsets are added

    def __init__(self, panel, parent=None):
        self.detector_factory = None
        self.folder: Path | None = None       # default: scans_folder()
        self.batch_size = 8
        self.running: ScanRequest | None = None
        self.last_result = None
        self.last_request: ScanRequest | None = None
        self.last_table = None
        self.last_groups: list = []
        self._scans = 0
        super().__init__("Scan", panel, parent)

    # ---------------------------------------------------------------- UI
    def _build_ui(self):
        self.task_list = QtWidgets.QListWidget()
        self.task_list.setMaximumHeight(90)
        self.task_list.setToolTip("The box tasks asked on every tile")
        self._fill_tasks()
        self.overlap_spin = QtWidgets.QDoubleSpinBox()
        self.overlap_spin.setRange(0.0, 0.9)
        self.overlap_spin.setSingleStep(0.05)
        self.overlap_spin.setValue(0.25)
        self.overlap_spin.setToolTip("Overlap of neighbouring tiles, a fraction of the tile")
        self.view_button = QtWidgets.QPushButton("Scan this view")
        self.view_button.clicked.connect(lambda: self.scan_view())
        self.whole_button = QtWidgets.QPushButton("Scan whole image")
        self.whole_button.clicked.connect(lambda: self.scan_whole())
        self.export_button = QtWidgets.QPushButton("Export scan…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._export_dialog)
        self.resume_button = QtWidgets.QPushButton("Resume…")
        self.resume_button.setToolTip("Continue a stopped or crashed scan from its journal (*.scan.jsonl)")
        self.resume_button.clicked.connect(self._resume_dialog)
        layout = self.grid
        layout.addWidget(self.task_list, 0, 0, 1, 4)
        layout.addWidget(QtWidgets.QLabel("Tile"), 1, 0)
        layout.addWidget(self.tile_spin, 1, 1)
        layout.addWidget(QtWidgets.QLabel("Overlap"), 1, 2)
        layout.addWidget(self.overlap_spin, 1, 3)
        layout.addWidget(self.view_button, 2, 0, 1, 2)
        layout.addWidget(self.whole_button, 2, 2, 1, 2)
        layout.addWidget(self.progress, 3, 0, 1, 3)
        layout.addWidget(self.stop_button, 3, 3)
        layout.addWidget(self.status, 4, 0, 2, 3)
        layout.addWidget(self.export_button, 4, 3)
        layout.addWidget(self.resume_button, 5, 3)

    def start_buttons(self) -> list:
        return [self.view_button, self.whole_button, self.resume_button]

    def stopping_text(self) -> str:
        return f"stopping after this batch … journal: {self.running.journal}"

    def _fill_tasks(self):
        from ..core.tasks import load_tasks

        try:
            tasks = [t for t in load_tasks().values() if t.kind == "boxes"]
        except RadioLlavaError as exc:      # shown in the list: the panel's message line comes later
            self.task_list.addItem(f"no box tasks: {exc}")
            return
        for task in tasks:
            item = QtWidgets.QListWidgetItem(task.title)
            item.setData(QtCore.Qt.UserRole, task.name)
            item.setFlags(QtCore.Qt.ItemIsUserCheckable | QtCore.Qt.ItemIsEnabled)
            item.setCheckState(QtCore.Qt.Checked if task.name in DEFAULT_TASKS else QtCore.Qt.Unchecked)
            self.task_list.addItem(item)

    def selected_tasks(self) -> list[str]:
        items = (self.task_list.item(i) for i in range(self.task_list.count()))
        return [it.data(QtCore.Qt.UserRole) for it in items if it.checkState() == QtCore.Qt.Checked]

    def set_tasks(self, names):
        for i in range(self.task_list.count()):
            item = self.task_list.item(i)
            checked = item.data(QtCore.Qt.UserRole) in names
            item.setCheckState(QtCore.Qt.Checked if checked else QtCore.Qt.Unchecked)

    # ---------------------------------------------------------------- starting
    def scan_view(self) -> bool:
        """Scan the pixels the first image viewer shows."""
        return self._scan(whole=False)

    def scan_whole(self) -> bool:
        """Scan the whole image of the first image viewer."""
        return self._scan(whole=True)

    def resume_scan(self, journal) -> bool:
        """Continue the scan whose journal this is (same image, model, tasks and tiling); the tiles
        already in it are not asked again."""
        return self._scan(journal=Path(journal))

    def _scan(self, whole: bool = True, journal: Path | None = None) -> bool:
        if self.panel.busy:
            self.panel.error("the assistant is busy; press Stop first")
            return False
        if self.detector_factory is None and self.panel.assistant is None:
            return self.panel.load_model(then=lambda: self._scan(whole, journal))
        try:
            request = self._request(whole) if journal is None else self._resume_request(journal)
            detector = self._detector(request.tasks)
        except RadioLlavaError as exc:
            self.panel.error(str(exc))
            return False
        job = self._job(request, detector)
        what = f"scanning {len(request.tiles)} tiles of {request.data.label} …"
        if not self.panel.run_job(job, what, on_success=lambda result: self._on_done(result, request),
                                 on_failure=self._on_failed):
            return False
        self.job, self.running = job, request
        self.stop_button.setEnabled(True)
        self._on_progress(0, len(request.tiles))
        self.status.setText(f"journal: {request.journal}")
        return True

    def _viewer_image(self):
        from .glue_data import first_image_viewer

        viewer = first_image_viewer(self.panel.application)
        if viewer is None:
            raise RadioLlavaError("open the image in an image viewer first; the scan covers what it shows")
        data = glue_data.image_layer_data(viewer)
        return viewer, data, glue_data.radio_image(viewer, data)

    def _request(self, whole: bool) -> ScanRequest:
        from ..core.scan import plan_tiles

        tasks = self.selected_tasks()
        if not tasks:
            raise RadioLlavaError("tick at least one box task to scan for")
        viewer, data, image = self._viewer_image()
        ny, nx = image.shape
        bounds = (0, 0, nx, ny) if whole else view_bounds(viewer, image.shape)
        tile, overlap = self.tile_spin.value(), round(self.overlap_spin.value(), 3)
        try:
            tiles = plan_tiles(image.shape, tile, overlap, bounds)
        except RadioLlavaError as exc:
            raise tiling_error(exc) from None
        out = scan_output(self.folder or scans_folder(), data.label)
        return ScanRequest(data, viewer.state.x_att, viewer.state.y_att, image, bounds, tiles, tasks, tile,
                           overlap, out)

    def _resume_request(self, journal: Path) -> ScanRequest:
        """The request a journal written by this section describes, on the first viewer's image
        (``core.scan`` then refuses it if the image or the model differ)."""
        from ..core.scan import JOURNAL_SUFFIX, plan_tiles, read_journal

        if not journal.name.endswith(JOURNAL_SUFFIX) or not journal.is_file():
            raise RadioLlavaError(f"{journal}: not a scan journal (a *{JOURNAL_SUFFIX} file from the Scan section)")
        header, _ = read_journal(journal)
        if not {"tile", "overlap", "bounds", "tasks"} <= set(header):
            raise RadioLlavaError(f"{journal} was not written by the Scan section (no tile, bounds or tasks "
                                  "in its header); continue it with `radiollava scan ... --resume`")
        viewer, data, image = self._viewer_image()
        bounds = tuple(header["bounds"])
        tiles = plan_tiles(image.shape, header["tile"], header["overlap"], bounds)
        out = journal.with_name(journal.name[:-len(JOURNAL_SUFFIX)])
        return ScanRequest(data, viewer.state.x_att, viewer.state.y_att, image, bounds, tiles,
                           list(header["tasks"]), header["tile"], header["overlap"], out, resume=True)

    def _detector(self, tasks):
        if self.detector_factory is not None:
            return self.detector_factory(self.panel.assistant, tasks)
        from ..core.scan import AssistantDetector

        return AssistantDetector(self.panel.assistant, tasks)

    def _job(self, request: ScanRequest, detector):
        from ..core.scan import scan, write_outputs

        batch_size = self.batch_size

        def work(on_text, cancel):
            result = scan(request.image, detector, request.tiles, request.journal, batch_size=batch_size,
                          settings=request.settings, resume=request.resume, bounds=request.bounds,
                          on_progress=job.progress.emit, cancel=cancel)
            write_outputs(result, request.out, None, request.image.wcs, request.meta)
            return result

        job = self._new_job(work, "the scan")
        return job

    # ---------------------------------------------------------------- results
    def _on_failed(self, message: str):
        self.job = None
        self.status.setText(f"{message}\nthe finished tiles are in the journal: {self.running.journal}")

    def _on_done(self, result, request: ScanRequest):
        self.job = None
        self.last_result, self.last_request = result, request
        self.last_table, self.last_groups = None, []
        self.export_button.setEnabled(True)
        state = "done" if result.complete else "stopped"
        summary = (f"scan {state}: {len(result.detections)} sources ({result.found} before merging) in "
                   f"{result.tiles_done}/{result.tiles_total} tiles, {result.tiles_blank} blank")
        self.status.setText(f"{summary}\ncatalogue: {request.out}\njournal: {request.journal}")
        try:
            if result.detections:
                self._add_to_glue(result, request)
        except RadioLlavaError as exc:
            self.panel.error(f"{summary}; {exc}")
        else:
            self.panel.info(summary)
        self.scan_finished.emit(result)

    def _add_to_glue(self, result, request: ScanRequest):
        """The table (linked to the image) and one subset per class on the image."""
        session = self.panel.session
        self._scans += 1
        label = f"scan: {request.data.label} ({', '.join(request.tasks)})"
        table = scan_table(result, label)
        session.data_collection.append(table)
        link_to_image(session.data_collection, table, request.data)
        tag = TAG if self._scans == 1 else f"{TAG} {self._scans}"
        self.last_table = table
        self.last_groups = add_class_subsets(session, request.x_att, request.y_att, result.detections, tag)

    # ---------------------------------------------------------------- export
    def export_scan(self, path) -> Path | None:
        """The last scan as a catalogue (.ecsv, .csv, .fits) or sky regions (.reg, .crtf)."""
        from ..core.scan import scan_columns, scan_meta
        from ..core.skyregions import write_boxes

        if self.last_result is None:
            self.panel.error("there is no scan to export yet")
            return None
        result, request = self.last_result, self.last_request
        try:
            out = write_boxes(path, result.boxes, request.image.wcs, extra=scan_columns(result),
                              meta=scan_meta(result, request.meta))
        except (RadioLlavaError, OSError) as exc:
            self.panel.error(str(exc))
            return None
        self.panel.info(f"wrote {len(result.detections)} scan boxes to {out}")
        return out

    def _resume_dialog(self):
        folder = self.folder or scans_folder()
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Resume a scan", str(folder),
                                                        "Scan journals (*.scan.jsonl)")
        if path:
            self.resume_scan(path)

    def _export_dialog(self):
        path = self.panel.ask_path(True, "Export scan", "ECSV catalogue (*.ecsv);;FITS table (*.fits);;"
                                       "CSV (*.csv);;DS9 regions (*.reg);;CRTF regions (*.crtf)")
        if path:
            self.export_scan(path)
