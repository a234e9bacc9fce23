"""The "Find more like this" section of the assistant panel: tiles like a region, or like a description.

The ranking is ``core.similar`` running in a ``sections.TileJob`` thread with the panel's loaded model:

- by example: the mosaic's tile index (built once per mosaic, model and tiling, then read from the
  cache) ranked by cosine similarity to the region last selected in the panel;
- by text: every tile asked "Does this image contain <text>?", ranked by P(Yes).

The top K tiles become ONE subset group on the image ("similar (top 10)", a single ``BoxesROI``)
and rows of a small table (rank, score, RA, Dec); selecting a row centres the image viewer on that
tile, keeping its zoom. Export writes the tiles as regions or a table with a rank column.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from qtpy import QtCore, QtWidgets

from ..core.errors import RadioLlavaError
from . import glue_data
from .rois import BoxesROI
from .sections import TileSection, tiling_error

OVERLAP = 0.25
COLOURS = {"similar": "#ffd700", "text": "#ff69b4"}      # gold, hot pink: apart from the class colours
NO_REGION = ("no region yet: draw one with the radio-llava rectangle or circle tool (or right-click a "
             "subset → Ask radio-llava), then Find more like this")


@dataclass
class SimilarRequest:
    """One search: the image, the tiling, and the example region or the description."""

    kind: str                    # "similar" (by example) or "text"
    data: object                 # glue Data of the image
    x_att: object                # the viewer's pixel attributes (the result subset goes on them)
    y_att: object
    image: object                # core RadioImage, named so the index cache recognises it
    tile: int
    top: int
    overlap: float = OVERLAP
    query: object = None         # core Cutout of the region (by example)
    text: str = ""
    tiles: int = 0               # how many tiles the image has at this tiling

    @property
    def title(self) -> str:
        """The result group's label without the "(top K)"."""
        if self.kind == "similar":
            return "similar"
        words = self.text.split()
        return "text: " + " ".join(words[:4]) + (" …" if len(words) > 4 else "")


@dataclass
class SimilarResult:
    request: SimilarRequest
    matches: list                # core SkyBoxes, best first
    done: int = 0                # tiles indexed or asked (all of them unless stopped)
    total: int = 0
    stopped: bool = False
    index_path: Path | None = None
    from_cache: bool = False
    group: object = None         # the glue subset group, once added


def indexed_image(image, data):
    """A copy of the viewer's plane that the index cache can recognise.

    glue's plane is named after the data label only; the cache key also wants the file it came
    from (size and modification time) and what plane of it this is: a digest of a sample of pixels.
    """
    out = copy.copy(image)
    source = getattr(getattr(data, "_load_log", None), "path", None)
    if source and Path(source).is_file():
        out.path = str(Path(source).resolve())
    out.hdu = f"{data.label} #{_sample_digest(image.data)}"
    return out


def _sample_digest(array, samples: int = 256) -> str:
    ny, nx = array.shape
    sample = np.asarray(array[::max(1, ny // samples), ::max(1, nx // samples)], dtype=np.float32)
    return hashlib.sha256(np.ascontiguousarray(sample).tobytes()).hexdigest()[:12]


def matches_roi(matches) -> BoxesROI:
    """The tiles as one ROI (xmin, xmax, ymin, ymax per box)."""
    return BoxesROI([(X0, X1, Y0, Y1) for X0, Y0, X1, Y1 in (m.pixel_box for m in matches)])


def centre_view_on(viewer, pixel_box) -> None:
    """Pan ``viewer`` so that the box's centre is in the middle, keeping the zoom."""
    from echo import delay_callback

    s = viewer.state
    X0, Y0, X1, Y1 = pixel_box
    cx, cy = (X0 + X1) / 2, (Y0 + Y1) / 2
    half_w, half_h = (s.x_max - s.x_min) / 2, (s.y_max - s.y_min) / 2
    with delay_callback(s, "x_min", "x_max", "y_min", "y_max"):
        s.x_min, s.x_max = cx - half_w, cx + half_w
        s.y_min, s.y_max = cy - half_h, cy + half_h


class SimilarSection(TileSection):
    """Find more like this (the panel's region) or search by description; the top K tiles become
    one subset group and rows of a table. ``cache_dir``: where tile indexes are kept (default
    ``~/.cache/glue-radiollava/index``)."""

    search_finished = QtCore.Signal(object)   # the SimilarResult, after its subset and rows are added

    def __init__(self, panel, parent=None):
        self.cache_dir: Path | None = None
        self.batch_size = 16
        self.last_result: SimilarResult | None = None
        self._runs = 0
        super().__init__("Find more like this", panel, parent)

    # ---------------------------------------------------------------- UI
    def _build_ui(self):
        self.top_spin = QtWidgets.QSpinBox()
        self.top_spin.setRange(1, 1000)
        self.top_spin.setValue(10)
        self.top_spin.setToolTip("How many tiles to show")
        self.find_button = QtWidgets.QPushButton("Find more like this")
        self.find_button.setToolTip("Rank the image's tiles by likeness to the region selected above")
        self.find_button.clicked.connect(lambda: self.find_similar())
        self.text_edit = QtWidgets.QLineEdit()
        self.text_edit.setPlaceholderText("Describe what to find")
        self.text_edit.returnPressed.connect(lambda: self.search_text())
        self.search_button = QtWidgets.QPushButton("Search")
        self.search_button.setToolTip('Rank the tiles by P(Yes) to "Does this image contain …?"')
        self.search_button.clicked.connect(lambda: self.search_text())
        self.results = QtWidgets.QTableWidget(0, 4)
        self.results.setHorizontalHeaderLabels(["Rank", "Score", "RA (deg)", "Dec (deg)"])
        self.results.verticalHeader().setVisible(False)
        self.results.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.results.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.results.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.results.setMaximumHeight(180)
        self.results.itemSelectionChanged.connect(self._on_row_selected)
        self.export_button = QtWidgets.QPushButton("Export…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._export_dialog)
        layout = self.grid
        layout.addWidget(QtWidgets.QLabel("Top"), 0, 0)
        layout.addWidget(self.top_spin, 0, 1)
        layout.addWidget(QtWidgets.QLabel("Tile"), 0, 2)
        layout.addWidget(self.tile_spin, 0, 3)
        layout.addWidget(self.find_button, 1, 0, 1, 4)
        layout.addWidget(self.text_edit, 2, 0, 1, 3)
        layout.addWidget(self.search_button, 2, 3)
        layout.addWidget(self.progress, 3, 0, 1, 3)
        layout.addWidget(self.stop_button, 3, 3)
        layout.addWidget(self.status, 4, 0, 1, 4)
        layout.addWidget(self.results, 5, 0, 1, 4)
        layout.addWidget(self.export_button, 6, 3)

    def start_buttons(self) -> list:
        return [self.find_button, self.search_button]

    # ---------------------------------------------------------------- starting
    def find_similar(self) -> bool:
        """Rank the tiles of the region's image by likeness to the region the panel holds."""
        return self._run("similar")

    def search_text(self, text: str | None = None) -> bool:
        """Rank the tiles of the first image viewer's image by P(Yes) to the description."""
        if text is not None:
            self.text_edit.setText(text)
        return self._run("text")

    def _run(self, kind: str) -> bool:
        if self.panel.busy:
            self.panel.error("the assistant is busy; press Stop first")
            return False
        try:
            request = self._request(kind)
        except RadioLlavaError as exc:
            self.panel.error(str(exc))
            return False
        if self.panel.assistant is None:
            return self.panel.load_model(then=lambda: self._run(kind))
        job = self._job(request)
        what = ("finding tiles like the region …" if kind == "similar"
                else f'searching for "{self.text_edit.text().strip()}" …')
        if not self.panel.run_job(job, what, on_success=self._on_done, on_failure=self._on_failed):
            return False
        self.job = job
        self.stop_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText(what)
        return True

    def _request(self, kind: str) -> SimilarRequest:
        from ..core.scan import plan_tiles
        from ..core.similar import text_question

        top, tile = self.top_spin.value(), self.tile_spin.value()
        if kind == "similar":
            region = self.panel.region
            if region is None or region.cutout is None:
                raise RadioLlavaError(NO_REGION)
            request = SimilarRequest(kind, region.data, region.x_att, region.y_att,
                                     indexed_image(region.image, region.data), tile, top, query=region.cutout)
        else:
            text = self.text_edit.text().strip()
            text_question(text)                  # an empty description fails before the model loads
            viewer = self._viewer()
            data = glue_data.image_layer_data(viewer)
            request = SimilarRequest(kind, data, viewer.state.x_att, viewer.state.y_att,
                                     glue_data.radio_image(viewer, data), tile, top, text=text)
        try:
            request.tiles = len(plan_tiles(request.image.shape, tile, request.overlap))
        except RadioLlavaError as exc:
            raise tiling_error(exc) from None
        return request

    def _viewer(self, data=None):
        """The first image viewer showing ``data`` (any image viewer when None), or a clear error."""
        from glue_qt.viewers.image import ImageViewer

        viewers = [v for tab in self.panel.application.viewers for v in tab if isinstance(v, ImageViewer)]
        shown = [v for v in viewers if data is None or v.state.reference_data is data]
        if not shown:
            raise RadioLlavaError("open the image in an image viewer first")
        return shown[0]

    def _job(self, request: SimilarRequest):
        assistant, cache_dir, batch_size = self.panel.assistant, self.cache_dir, self.batch_size
        seen = [0]

        def progress(done, total):
            seen[0] = done
            job.progress.emit(done, total)

        def work(on_text, cancel):
            from ..core import similar

            if request.kind == "similar":
                index = similar.build_index(request.image, assistant, request.tile, request.overlap,
                                            cache_dir, batch_size=batch_size, on_progress=progress,
                                            cancel=cancel)
                matches = similar.similar_to(index, assistant, request.query, request.top)
                n = len(index.tiles)
                return SimilarResult(request, matches, done=n, total=n, index_path=index.path,
                                     from_cache=index.from_cache)
            matches = similar.search_text(request.image, assistant, request.text, request.tile,
                                          request.overlap, request.top, batch_size, on_progress=progress,
                                          cancel=cancel)
            return SimilarResult(request, matches, done=seen[0], total=request.tiles, stopped=cancel.is_set())

        name = "finding similar tiles" if request.kind == "similar" else "the text search"
        job = self._new_job(work, name)
        return job

    def _on_failed(self, message: str):
        self.job = None
        self.status.setText(message)

    def _on_done(self, result: SimilarResult):
        self.job = None
        self._on_progress(result.done, result.total)
        self.last_result = result
        self._fill_table(result.matches)
        self.export_button.setEnabled(bool(result.matches))
        self.status.setText(self._describe(result))
        if result.matches:
            result.group = self._add_group(result)
        summary = self._summary(result)
        (self.panel.error if not result.matches else self.panel.info)(summary)
        self.search_finished.emit(result)

    def _describe(self, result: SimilarResult) -> str:
        if result.request.kind == "similar":
            how = "from the cache" if result.from_cache else f"built ({result.total} tiles)"
            return f"index {how}: {result.index_path}"
        state = f"{result.total} tiles"
        if result.stopped:
            state = f"stopped after {result.done}/{result.total} tiles"
        return f'P(Yes) to "Does this image contain {result.request.text}?", {state}'

    def _summary(self, result: SimilarResult) -> str:
        if not result.matches:
            return "no tile was ranked (stopped before the first batch, or every tile is blank)"
        by_example = result.request.kind == "similar"
        what = "tiles like the region" if by_example else "tiles matching the description"
        stopped = f" (stopped: {result.done}/{result.total} tiles asked)" if result.stopped else ""
        return f"top {len(result.matches)} {what}{stopped}; select a row to go there"

    def _add_group(self, result: SimilarResult):
        """The tiles as one coloured subset group, e.g. "similar (top 10)", "similar #2 (top 10)"."""
        self._runs += 1
        request = result.request
        title = request.title if self._runs == 1 else f"{request.title} #{self._runs}"
        label = f"{title} (top {len(result.matches)})"
        roi = matches_roi(result.matches)
        return glue_data.new_subset(self.panel.session, request.x_att, request.y_att, roi, label,
                                    COLOURS[request.kind])

    def _fill_table(self, matches):
        self.results.blockSignals(True)
        self.results.clearContents()
        self.results.setRowCount(len(matches))
        for r, m in enumerate(matches):
            values = [str(r + 1), f"{m.score:.4f}", f"{m.ra:.5f}", f"{m.dec:+.5f}"]
            for c, value in enumerate(values):
                self.results.setItem(r, c, QtWidgets.QTableWidgetItem(value))
        self.results.blockSignals(False)

    def _on_row_selected(self):
        rows = sorted({i.row() for i in self.results.selectedIndexes()})
        if rows:
            self.go_to(rows[0])

    def go_to(self, rank_index: int) -> bool:
        """Centre the image viewer on the tile of row ``rank_index`` (0 = best), keeping the zoom."""
        result = self.last_result
        if result is None or not 0 <= rank_index < len(result.matches):
            return False
        try:
            viewer = self._viewer(result.request.data)
        except RadioLlavaError as exc:
            self.panel.error(str(exc))
            return False
        centre_view_on(viewer, result.matches[rank_index].pixel_box)
        return True

    # ---------------------------------------------------------------- export
    def export_results(self, path) -> Path | None:
        """The last results as regions (.reg, .crtf) or a table with a rank column (.ecsv, .csv, .fits)."""
        from ..core.skyregions import write_boxes

        result = self.last_result
        if result is None or not result.matches:
            self.panel.error("there are no results to export yet")
            return None
        ranks = list(range(1, len(result.matches) + 1))
        try:
            out = write_boxes(path, result.matches, result.request.image.wcs, extra={"rank": ranks})
        except (RadioLlavaError, OSError) as exc:
            self.panel.error(str(exc))
            return None
        self.panel.info(f"wrote {len(result.matches)} tiles to {out}")
        return out

    def _export_dialog(self):
        path = self.panel.ask_path(True, "Export results", "DS9 regions (*.reg);;CRTF regions (*.crtf);;"
                                       "ECSV table (*.ecsv);;CSV (*.csv);;FITS table (*.fits)")
        if path:
            self.export_results(path)
