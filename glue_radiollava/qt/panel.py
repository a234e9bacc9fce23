"""The assistant panel: a dock on the glue main window.

Model (load with status) · preview of the picture exactly as the model sees it · task presets and a
free question · the conversation, streamed, with Stop · few-shot examples · the table of returned
boxes (show/hide, delete) · export of regions and catalogues · transcripts (save / load).

Model loading and generation run in ``workers.Job`` threads; everything that touches glue happens
in slots on the GUI thread. Errors appear in the panel's message line, never as dialogs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from qtpy import QtCore, QtGui, QtWidgets

from .. import settings
from ..core.errors import RadioLlavaError
from ..core.skyregions import ASK_COLOUR
from . import glue_data
from .widgets import guard_wheel
from .workers import Job, protect_stderr

log = logging.getLogger(__name__)

FREE_QUESTION = "Free question"
SKY_FRAMES = ("icrs", "fk5", "fk4", "galactic")     # the frames a typed centre may be given in


@dataclass
class RegionContext:
    """The region being asked about: where it is, and the picture the model sees."""

    label: str
    data: object                 # glue Data
    x_att: object                # the viewer's pixel attributes (boxes become subsets on them)
    y_att: object
    image: object                # core RadioImage
    cutout: object               # core Cutout
    view: object = None          # core ModelView (rendered with the model's profile)
    group: object = None         # the glue subset group of the region
    viewer: object = None        # the image viewer it was drawn on


@dataclass
class Conversation:
    turns: list = field(default_factory=list)       # core Turn


class AssistantPanel(QtWidgets.QWidget):
    """The radio-llava assistant for one glue application."""

    answer_ready = QtCore.Signal(object)     # emitted after an answer is shown and its boxes added
    model_ready = QtCore.Signal(object)
    busy_changed = QtCore.Signal(bool)

    def __init__(self, application, parent=None):
        super().__init__(parent)
        self.application = application
        self.session = application.session
        self.assistant = None
        self.assistant_spec = None
        self.region: RegionContext | None = None
        self.conversation = Conversation()
        self.examples: list = []
        self.answers: list = []          # core Answer objects, in order (the transcript)
        self.ask_regions = 0             # ask regions made so far (their labels count up)
        self.job: Job | None = None
        self._busy = False               # a job is running and its result not yet handled
        self._after_load = None
        protect_stderr()
        self._build_ui()
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # ================================================================ UI
    def _build_ui(self):
        layout = _FitLayout(self)
        self.message = QtWidgets.QLabel("")        # at the top: an error is seen without scrolling
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        layout.addWidget(self.message)

        model_box = self.model_box = QtWidgets.QGroupBox("Model")
        model_box.setCheckable(True)      # folds once a model is loaded; its title says which
        model_body = QtWidgets.QWidget()
        model_box.toggled.connect(model_body.setVisible)
        QtWidgets.QVBoxLayout(model_box).addWidget(model_body)
        form = QtWidgets.QGridLayout(model_body)
        form.setContentsMargins(0, 0, 0, 0)
        self.model_edit = QtWidgets.QLineEdit(settings.get("RADIOLLAVA_MODEL"))
        self.model_edit.setToolTip("nano (embedded), a local model folder, or a hub id org/name")
        self.adapter_edit = QtWidgets.QLineEdit(settings.get("RADIOLLAVA_ADAPTER"))
        self.adapter_edit.setPlaceholderText("LoRA adapter folder (optional)")
        self.quantize_combo = QtWidgets.QComboBox()
        self.quantize_combo.addItems(["", "4bit", "8bit"])
        self.quantize_combo.setCurrentText(settings.get("RADIOLLAVA_QUANTIZE"))
        self.device_combo = QtWidgets.QComboBox()
        self.device_combo.setEditable(True)
        self.device_combo.addItems(["auto", "cpu", "cuda"])
        self.device_combo.setCurrentText(settings.get("RADIOLLAVA_DEVICE"))
        self.load_button = QtWidgets.QPushButton("Load")
        self.load_button.clicked.connect(lambda: self.load_model())
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.model_status = QtWidgets.QLabel("no model loaded")
        self.model_status.setWordWrap(True)
        form.addWidget(self.model_edit, 0, 0, 1, 3)
        form.addWidget(self.load_button, 0, 3)
        form.addWidget(self.adapter_edit, 1, 0)
        form.addWidget(self.quantize_combo, 1, 1)
        form.addWidget(self.device_combo, 1, 2, 1, 2)
        form.addWidget(self.model_status, 2, 0, 1, 4)
        layout.addWidget(self.progress)          # under the message line: seen while loading and asking
        self.quantize_combo.setToolTip("quantize the model's weights (needs bitsandbytes and a GPU)")
        self.device_combo.setToolTip("auto, cpu, cuda, cuda:1, mps")
        form.setColumnStretch(0, 1)
        layout.addWidget(model_box)

        region_box = self.region_box = QtWidgets.QGroupBox("Region — preview as the model sees it")
        outer = QtWidgets.QVBoxLayout(region_box)
        rlay = QtWidgets.QHBoxLayout()
        column = QtWidgets.QVBoxLayout()
        self.preview = QtWidgets.QLabel("draw a region with the\nradio-llava tools")
        self.preview.setFixedSize(128, 128)
        self.preview.setAlignment(QtCore.Qt.AlignCenter)
        self.preview.setStyleSheet("background: #202020; color: #aaaaaa;")
        column.addWidget(self.preview)
        column.addStretch(1)
        self.region_info = QtWidgets.QLabel("")
        self.region_info.setWordWrap(True)
        self.region_info.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.region_info.setAlignment(QtCore.Qt.AlignTop)
        rlay.addLayout(column)
        rlay.addWidget(self.region_info, 1)
        outer.addLayout(rlay)
        row = QtWidgets.QHBoxLayout()
        self.centre_edit = QtWidgets.QLineEdit()
        self.centre_edit.setPlaceholderText("centre: 205.12 55.3 or 13:40:29 +55:18:00")
        self.centre_edit.returnPressed.connect(lambda: self.region_from_text())
        self.frame_combo = QtWidgets.QComboBox()
        self.frame_combo.addItems(SKY_FRAMES)
        self.frame_combo.setToolTip("the frame of the typed centre")
        self.size_edit = QtWidgets.QLineEdit("2arcmin")
        self.size_edit.setToolTip("width (= height): 2arcmin, 90arcsec, 0.05deg")
        self.size_edit.setMaximumWidth(90)
        self.size_edit.returnPressed.connect(lambda: self.region_from_text())
        self.go_button = QtWidgets.QPushButton("Go")
        self.go_button.setToolTip("make an ask region at this centre and size")
        self.go_button.clicked.connect(lambda: self.region_from_text())
        self.region_file_button = QtWidgets.QPushButton("File…")
        self.region_file_button.setToolTip("Load region file: ask about the first shape of a DS9 or CRTF "
                                           "file (sky or pixel)")
        self.region_file_button.clicked.connect(self._region_file_dialog)
        for w, stretch in ((self.centre_edit, 1), (self.frame_combo, 0), (self.size_edit, 0), (self.go_button, 0),
                           (self.region_file_button, 0)):
            row.addWidget(w, stretch)
        outer.addLayout(row)
        layout.addWidget(region_box)

        ask_box = QtWidgets.QGroupBox("Ask")
        alay = QtWidgets.QVBoxLayout(ask_box)
        row = QtWidgets.QHBoxLayout()
        self.task_combo = QtWidgets.QComboBox()
        self.task_combo.addItem(FREE_QUESTION, None)
        try:
            from ..core.tasks import load_tasks

            for task in load_tasks().values():
                self.task_combo.addItem(task.title, task.name)
        except RadioLlavaError as exc:
            self.error(str(exc))
        self.task_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.task_combo.setMinimumContentsLength(14)       # long task titles must not widen the dock
        self.task_combo.currentIndexChanged.connect(self._on_task_chosen)
        self.question_edit = QtWidgets.QLineEdit()
        self.question_edit.setPlaceholderText("Ask about the region, or pick a task")
        self.question_edit.returnPressed.connect(lambda: self.ask())
        self.question_edit.textEdited.connect(self._on_question_typed)
        self.follow_up = QtWidgets.QCheckBox("Follow up")
        self.follow_up.setToolTip("ask a task within the conversation; off: each task sees the region "
                                  "alone, as the benchmarks ask it (free questions always follow up)")
        self.ask_button = QtWidgets.QPushButton("Ask")
        self.ask_button.clicked.connect(lambda: self.ask())
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        row.addWidget(self.task_combo, 1)
        row.addWidget(self.follow_up)
        row.addWidget(self.ask_button)
        row.addWidget(self.stop_button)
        alay.addLayout(row)
        alay.addWidget(self.question_edit)
        self.chat = QtWidgets.QPlainTextEdit()
        self.chat.setReadOnly(True)
        self.chat.setMinimumHeight(64)
        # the chat and the box table share what height there is (their size hints would make the
        # dock scroll on a laptop screen)
        self.chat.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Ignored)
        alay.addWidget(self.chat, 1)
        row = QtWidgets.QHBoxLayout()
        self.new_chat_button = QtWidgets.QPushButton("New conversation")
        self.new_chat_button.clicked.connect(self.new_conversation)
        self.examples_button = QtWidgets.QToolButton()       # a menu: the row fits a narrow dock
        self.examples_button.setText("Examples (0)")
        self.examples_button.setToolTip("in-context examples: regions with a question and answer that "
                                        "later questions see first")
        self.examples_button.setPopupMode(QtWidgets.QToolButton.InstantPopup)
        menu = QtWidgets.QMenu(self.examples_button)
        menu.addAction("Use this region and its last answer as an example", lambda: self.pin_example())
        menu.addAction("Clear examples", self.clear_examples)
        self.examples_button.setMenu(menu)
        self.transcript_button = QtWidgets.QToolButton()
        self.transcript_button.setText("Transcript")
        self.transcript_button.setToolTip("save the conversation with its boxes and provenance, or load one")
        self.transcript_button.setPopupMode(QtWidgets.QToolButton.InstantPopup)
        menu = QtWidgets.QMenu(self.transcript_button)
        self.save_transcript_action = menu.addAction("Save transcript…", self._save_transcript_dialog)
        menu.addAction("Load transcript…", self._load_transcript_dialog)
        self.transcript_button.setMenu(menu)
        for w in (self.new_chat_button, self.examples_button):
            row.addWidget(w)
        row.addStretch(1)
        row.addWidget(self.transcript_button)
        alay.addLayout(row)
        layout.addWidget(ask_box, 1)

        # Boxes, Scan and Find-more share one tab widget: the chat and the boxes fit a 768 px screen
        self.lower_tabs = QtWidgets.QTabWidget()
        from .boxes_section import BoxesSection

        self.boxes = BoxesSection(self)
        self.boxes.changed.connect(self._update_buttons)
        self.lower_tabs.addTab(self.boxes, "Boxes")

        from .scan_panel import ScanSection
        from .similar_panel import SimilarSection

        self.scan_section = ScanSection(self)
        self.similar_section = SimilarSection(self)
        for section in (self.scan_section, self.similar_section):
            section.setCheckable(False)                   # a tab instead of a fold
            page = QtWidgets.QScrollArea()                # a long section scrolls inside its tab
            page.setWidgetResizable(True)
            page.setFrameShape(QtWidgets.QFrame.NoFrame)
            page.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Ignored)
            page.setWidget(section)
            self.lower_tabs.addTab(page, section.title())
            section.setTitle("")
        layout.addWidget(self.lower_tabs, 1)
        guard_wheel(self)
        self._update_buttons()

    # ================================================================ messages
    def error(self, text: str):
        """Show ``text`` as an error at the top of the panel and in glue's status bar."""
        self.message.setStyleSheet("color: #c0392b;")
        self.message.setText(text)
        self._status_bar(text)
        log.info("radiollava: %s", text)

    def info(self, text: str):
        self.message.setStyleSheet("")
        self.message.setText(text)
        self._status_bar(text)

    def _status_bar(self, text: str):
        bar = getattr(self.application, "statusBar", None)
        if callable(bar):
            bar().showMessage(f"radio-llava: {text}" if text else "", 15000)

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def waiting_for_model(self) -> bool:
        """A question waits for the model being loaded (it is asked once the model is ready)."""
        return self._after_load is not None

    def _set_busy(self, busy: bool, what: str = ""):
        self._busy = busy
        self.progress.setRange(0, 0 if busy else 1)
        self.ask_button.setEnabled(not busy)
        self.load_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        if what:
            self.info(what)
        self.busy_changed.emit(busy)

    def run_job(self, job: Job, what: str, on_success, on_failure=None) -> bool:
        """Run ``job``; on the GUI thread the panel is idle again BEFORE the handlers run."""
        if self.busy:
            self.error("the assistant is busy; press Stop first")
            return False
        self.job = job

        def succeeded(result):
            self._set_busy(False)
            on_success(result)

        def failed(message):
            self._set_busy(False)
            self._after_load = None
            if on_failure is not None:
                on_failure(message)
            self.error(message)

        job.on(job.succeeded, succeeded)
        job.on(job.failed, failed)
        self._set_busy(True, what)
        job.start()
        return True

    # ================================================================ model
    def current_spec(self):
        from ..core.models import ModelSpec

        device = self.device_combo.currentText().strip()
        return ModelSpec(self.model_edit.text().strip() or "nano", self.adapter_edit.text().strip() or None,
                         self.quantize_combo.currentText() or None, None,
                         None if device in ("", "auto") else device)

    def load_model(self, then=None) -> bool:
        """Load the model in a thread; ``then`` runs on the GUI thread once it is ready."""
        from ..core.assistant import Assistant
        from ..core.models import load_model

        spec = self.current_spec()
        self._after_load = then

        def work(on_text, cancel):
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # the panel shows its own progress
            return Assistant(load_model(spec))

        self.model_status.setText(f"loading {spec.describe()} …")
        job = Job(work, name="loading the model", parent=self)
        return self.run_job(job, f"loading {spec.describe()} …",
                           on_success=lambda assistant: self._on_model_loaded(assistant, spec),
                           on_failure=lambda msg: self.model_status.setText("no model loaded"))

    def set_assistant(self, assistant, spec=None):
        """Use an already built Assistant (scripting, tests)."""
        self._on_model_loaded(assistant, spec)

    def _on_model_loaded(self, assistant, spec):
        self.assistant = assistant
        self.assistant_spec = spec
        loaded = getattr(assistant, "loaded", None)
        if loaded is not None:
            self.model_status.setText(f"{Path(str(loaded.folder)).name} · {loaded.family.name} · "
                                      f"{loaded.device}/{loaded.dtype} · {loaded.load_s:.1f} s")
        else:
            self.model_status.setText(f"{type(assistant).__name__} ready")
        self.info("model ready")
        self.model_box.setTitle(f"Model: {self.model_status.text()}")
        self.model_box.setChecked(False)       # folded: the title names the model; tick to change it
        if self.region is not None:
            self._render_region()
        self.model_ready.emit(assistant)
        then, self._after_load = self._after_load, None
        if then is not None:
            QtCore.QTimer.singleShot(0, then)

    # ================================================================ region
    def set_region(self, viewer, box, label: str, group=None) -> bool:
        """Ask about pixel ``box`` (x0, y0, x1, y1) of the data the viewer shows."""
        try:
            data = glue_data.image_layer_data(viewer)
            image = glue_data.radio_image(viewer, data)
            cutout = glue_data.cutout_for_box(image, box)
        except RadioLlavaError as exc:
            self.error(str(exc))
            return False
        self.region = RegionContext(label, data, viewer.state.x_att, viewer.state.y_att, image, cutout,
                                    group=group, viewer=viewer)
        self.conversation = Conversation()
        self._render_region()
        self._append_chat(f"— {label} —\n")
        return True

    def ask_region(self, viewer, roi, label: str | None = None):
        """A NEW ask subset for a glue ROI (viewer pixels) and the panel focused on it; the
        person's own subsets are left alone. Returns the subset group, or None (the panel says why)."""
        self.ask_regions += 1
        label = label or f"Ask region #{self.ask_regions} (radio-llava)"
        try:
            box = glue_data.pixel_box(glue_data.roi_to_pixel_region(roi))
        except RadioLlavaError as exc:
            self.error(str(exc))
            return None
        if not self.set_region(viewer, box, label):
            return None  # no overlap, not an image, …: nothing was created
        group = glue_data.new_subset(self.session, viewer.state.x_att, viewer.state.y_att, roi, label, ASK_COLOUR,
                                     linewidth=3)
        self.region.group = group
        return group

    def _ask_viewer(self, viewer=None):
        viewer = viewer or (self.region.viewer if self.region is not None else None)
        viewer = viewer or glue_data.first_image_viewer(self.application)
        if viewer is None:
            raise RadioLlavaError("open a FITS image in an image viewer first")
        return viewer

    def region_from_text(self, centre: str | None = None, size: str | None = None, frame: str | None = None,
                         viewer=None):
        """An ask region from a typed sky centre (degrees or sexagesimal, in ``frame``) and size."""
        from glue.core.roi import RectangularROI

        from ..core.image import parse_center, parse_size
        from ..core.transform import index_box_to_edges

        centre = self.centre_edit.text() if centre is None else centre
        size = self.size_edit.text() if size is None else size
        frame = frame or self.frame_combo.currentText()
        try:
            if not str(centre).strip():
                raise RadioLlavaError("type a centre first, e.g. 205.12 55.3 or 13:40:29 +55:18:00")
            viewer = self._ask_viewer(viewer)
            image = glue_data.radio_image(viewer)
            cut = image.cutout_sky(parse_center(centre, frame), parse_size(size))
        except RadioLlavaError as exc:
            self.error(str(exc))
            return None
        ny, nx = cut.shape
        X0, Y0, X1, Y1 = index_box_to_edges(cut.x0, cut.y0, cut.x0 + nx, cut.y0 + ny)
        roi = RectangularROI(xmin=X0, xmax=X1, ymin=Y0, ymax=Y1)
        return self.ask_region(viewer, roi, f"{centre.strip()} {size.strip()} (radio-llava)")

    def region_from_file(self, path, viewer=None):
        """An ask region from the first shape with an area of a DS9/CRTF/FITS region file."""
        from ..core.image import crtf_frame, read_region_shape, region_on_image

        try:
            viewer = self._ask_viewer(viewer)
            image = glue_data.radio_image(viewer)
            shape, notes = read_region_shape(path, crtf_frame(image.wcs))
            pixel, _ = region_on_image(shape, image.wcs, path)
        except RadioLlavaError as exc:
            self.error(str(exc))
            return None
        group = self.ask_region(viewer, glue_data.pixel_region_to_roi(pixel),
                                f"{Path(str(path)).name} (radio-llava)")
        if group is not None:
            self.info("; ".join([f"read {type(shape).__name__.replace('SkyRegion', '').replace('PixelRegion', '')}"
                                 f" from {Path(str(path)).name}"] + notes))
        return group

    def _region_file_dialog(self):
        path = self.ask_path(False, "Load region file", "Regions (*.reg *.ds9 *.crtf *.fits);;All files (*)")
        if path:
            self.region_from_file(path)

    def _profile(self):
        from ..core.profiles import get_profile

        name = settings.get("RADIOLLAVA_PROFILE")
        if name and name != settings.PROFILE_FROM_MODEL:
            return get_profile(name)
        if self.assistant is not None:
            return self.assistant.profile
        return get_profile(None)

    def _render_region(self):
        from ..core.profiles import render

        region = self.region
        region.view = render(region.cutout, self._profile())
        self.preview.setPixmap(_pixmap(region.view.array, self.preview.size()))
        centre = region.cutout.center_sky
        w, h = region.cutout.size_arcsec
        ny, nx = region.cutout.shape
        lon, lat = centre.spherical.lon.deg, centre.spherical.lat.deg
        names = ("l", "b") if centre.frame.name == "galactic" else ("RA", "Dec")
        text = (f"<b>{region.label}</b> — {region.data.label}<br>"
                f"{names[0]} {lon:.5f}°, {names[1]} {lat:+.5f}° ({centre.frame.name})<br>"
                f"{w / 60:.2f}′ × {h / 60:.2f}′ ({nx}×{ny} px) · profile {region.view.profile.name} "
                f"v{region.view.profile.version}")
        try:
            from ..core.stats import HOW, region_statistics

            text += "<br>" + "<br>".join(region_statistics(region.cutout).lines())
            self.region_info.setToolTip(HOW)
        except (ValueError, RadioLlavaError) as exc:       # e.g. no finite pixel: the preview still shows
            log.info("radiollava: no statistics for %s: %s", region.label, exc)
        if region.view.warnings:
            text += "<br><i>" + "<br>".join(region.view.warnings) + "</i>"
        self.region_info.setText(text)
        north = "north up" if region.view.profile.north_up else "north down"
        self.region_box.setTitle(f"Region — preview as the model sees it, {north}")

    # ================================================================ asking
    def ask(self, question: str | None = None, task: str | None = None) -> bool:
        """Ask about the current region (question text, or the selected task preset)."""
        if self.region is None:
            self.error("no region yet: draw one with the radio-llava rectangle or circle tool, "
                        "or right-click a subset → Ask radio-llava")
            return False
        if question is None and task is None:       # the menu's task wins; a typed question is a free one
            task = self.task_combo.currentData()
            question = None if task else (self.question_edit.text().strip() or None)
        if not question and not task:
            self.error("type a question or pick a task")
            return False
        if self.assistant is None:
            return self.load_model(then=lambda: self.ask(question, task))
        if self.region.view is None:
            self._render_region()
        follow_up = task is None or self.follow_up.isChecked()
        region, examples = self.region, list(self.examples)
        turns = list(self.conversation.turns) if follow_up else []     # a task sees the region alone
        assistant = self.assistant
        max_new = settings.get("RADIOLLAVA_MAX_NEW_TOKENS")
        temperature = settings.get("RADIOLLAVA_TEMPERATURE")

        def work(on_text, cancel):
            return assistant.ask(region.view, question=question, task=task, history=turns, examples=examples,
                                 max_new_tokens=max_new, temperature=temperature, on_text=on_text,
                                 cancel=cancel)

        shown = question or self.task_combo.itemText(max(self.task_combo.findData(task), 0))
        alone = "" if turns or task is None else " (region alone)"
        self._append_chat(f"\nYou: {shown}{alone}\nradio-llava: ")
        job = Job(work, name="asking the model", parent=self)
        job.on(job.text, self._append_chat)

        def answered(answer):
            answer.provenance["conversation"] = {"follow_up": follow_up, "earlier_turns": len(turns)}
            self._on_answer(answer, region)

        return self.run_job(job, "generating … (Stop to interrupt)", on_success=answered)

    def _on_task_chosen(self, _index):
        """Picking a task shows its question in the text box; "Free question" clears it."""
        from ..core.tasks import get_task

        name = self.task_combo.currentData()
        self.question_edit.setText(get_task(name).prompt if name else "")

    def _on_question_typed(self, _text):
        """Editing the text turns it into a free question (the menu follows)."""
        if self.task_combo.currentData() is not None:
            self.task_combo.blockSignals(True)
            self.task_combo.setCurrentIndex(0)
            self.task_combo.blockSignals(False)

    def stop(self):
        if self.job is not None:
            self.job.cancel()
            self.info("stopping …")

    def _append_chat(self, text: str):
        cursor = self.chat.textCursor()
        cursor.movePosition(QtGui.QTextCursor.End)
        cursor.insertText(text)
        self.chat.setTextCursor(cursor)
        self.chat.ensureCursorVisible()

    def _on_answer(self, answer, region: RegionContext):
        from ..core.assistant import Turn

        self._append_chat("\n")
        if answer.cancelled:
            self._append_chat("(stopped)\n")
        self.answers.append(answer)
        self._update_buttons()
        if region is self.region:
            self.conversation.turns.append(Turn(answer.question, answer.text))
        added = []
        if answer.boxes and not answer.cancelled:
            added = self.boxes.add(answer.boxes, region)
        notes = list(answer.warnings)
        if answer.parsed.kind == "boxes" and answer.parsed.parsed and not answer.boxes and not notes:
            notes.append("the model found no such source")
        if added:
            notes.insert(0, f"{len(added)} box(es) added to the mosaic")
        if answer.parsed.unparsed:
            self.error("; ".join(notes))
        else:
            self.info("; ".join(notes) if notes else f"answered in {answer.timings.get('generate_s', 0):.1f} s")
        self.answer_ready.emit(answer)

    # ================================================================ boxes
    def show_section(self, section):
        """Bring a tab (the Boxes page, the Scan or Find-more section) to the front."""
        for index in range(self.lower_tabs.count()):
            page = self.lower_tabs.widget(index)
            if page is section or getattr(page, "widget", lambda: None)() is section:
                self.lower_tabs.setCurrentIndex(index)

    def _update_buttons(self):
        """The Boxes tab counts its boxes; saving a transcript only with answers."""
        rows = self.boxes.rows
        self.lower_tabs.setTabText(0, f"Boxes ({len(rows)})" if rows else "Boxes")
        self.save_transcript_action.setEnabled(bool(self.answers))

    # ================================================================ few-shot
    def pin_example(self, answer_text: str | None = None) -> bool:
        """Pin the current region with its last question and answer (or ``answer_text``)."""
        from ..core.assistant import Example

        if self.region is None or self.region.view is None or not self.conversation.turns:
            self.error("ask something about a region first; its answer becomes the example")
            return False
        last = self.conversation.turns[-1]
        self.examples.append(Example(self.region.view, last.question, answer_text or last.answer))
        self.examples_button.setText(f"Examples ({len(self.examples)})")
        self.info(f"pinned {self.region.label} as example {len(self.examples)}")
        return True

    def clear_examples(self):
        self.examples = []
        self.examples_button.setText("Examples (0)")

    def new_conversation(self):
        self.conversation = Conversation()
        self._append_chat("\n— new conversation —\n")

    # ================================================================ export
    def save_transcript(self, path, overwrite: bool = False) -> Path | None:
        from ..core.files import check_outputs
        from ..core.transcript import save_transcript

        entries = [a.to_dict() for a in self.answers]
        image = {"label": self.region.data.label} if self.region is not None else {}
        try:
            check_outputs({"the transcript": path}, overwrite=overwrite, hint="pass overwrite=True")
            out = save_transcript(path, entries, image)
        except (RadioLlavaError, OSError) as exc:
            self.error(f"{path}: cannot save the transcript ({exc})")
            return None
        self.info(f"saved {len(entries)} answers to {out}")
        return out

    def load_transcript(self, path, viewer=None) -> int:
        """Show a saved transcript's conversation and put its boxes back on the mosaic."""
        from ..core.transcript import load_transcript

        try:               # everything is read and placed before the panel changes: all or nothing
            _, entries = load_transcript(path)
            region = self._region_for(viewer)
            placed = [[b.on_image(region.image.wcs) for b in entry["boxes"]] for entry in entries]
        except RadioLlavaError as exc:
            self.error(f"{path}: {exc}" if str(path) not in str(exc) else str(exc))
            return 0
        count = 0
        for entry, boxes in zip(entries, placed):
            self._append_chat(f"\nYou: {entry.get('question', '')}\nradio-llava: {entry.get('answer', '')}\n")
            if boxes:
                self.boxes.add(boxes, region)
                count += len(boxes)
        self.info(f"loaded {len(entries)} answers and {count} boxes from {path}")
        return count

    def _region_for(self, viewer) -> RegionContext:
        if viewer is None:
            if self.region is not None:
                return self.region
            viewer = glue_data.first_image_viewer(self.application)
            if viewer is None:
                raise RadioLlavaError("open the image in an image viewer before loading a transcript")
        data = glue_data.image_layer_data(viewer)
        image = glue_data.radio_image(viewer, data)
        return RegionContext("transcript", data, viewer.state.x_att, viewer.state.y_att, image, None,
                             viewer=viewer)

    def ask_path(self, save: bool, title: str, filters: str):
        """A file name from Qt's dialog (save: it asks before replacing a file), or None."""
        dialog = QtWidgets.QFileDialog.getSaveFileName if save else QtWidgets.QFileDialog.getOpenFileName
        path, _ = dialog(self, title, "", filters)
        return path or None

    def _save_transcript_dialog(self):
        path = self.ask_path(True, "Save transcript", "JSON (*.json)")
        if path:
            self.save_transcript(path, overwrite=True)

    def _load_transcript_dialog(self):
        path = self.ask_path(False, "Load transcript", "JSON (*.json)")
        if path:
            self.load_transcript(path)

    # ================================================================ shutdown
    def shutdown(self):
        """Cancel any running job and wait for its thread (closing the panel or glue)."""
        if self.job is not None and self.job.isRunning():
            self.job.stop_and_wait()

    def closeEvent(self, event):
        self.shutdown()
        super().closeEvent(event)


def _pixmap(rgb, size) -> QtGui.QPixmap:
    import numpy as np

    rgb = np.ascontiguousarray(rgb)
    h, w, _ = rgb.shape
    image = QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format_RGB888).copy()
    return QtGui.QPixmap.fromImage(image).scaled(size, QtCore.Qt.KeepAspectRatio, QtCore.Qt.FastTransformation)


class _FitLayout(QtWidgets.QVBoxLayout):
    """The panel's layout: it fits the dock's height instead of growing to its word-wrapped labels'
    preferred height for the dock's width (a QScrollArea takes that, and the dock would scroll on a
    laptop screen); below the minimum the dock scrolls as usual."""

    def hasHeightForWidth(self) -> bool:
        return False


class AssistantDock(QtWidgets.QDockWidget):
    def __init__(self, panel, parent=None):
        super().__init__("radio-llava assistant", parent)
        self.setObjectName("radiollava_dock")
        self.panel = panel
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(panel)
        self.setWidget(scroll)

    def closeEvent(self, event):
        self.panel.shutdown()
        super().closeEvent(event)


def get_panel(application, create: bool = True, show: bool = True):
    """The application's assistant panel (one per glue window), created and docked on demand."""
    dock = getattr(application, "_radiollava_dock", None)
    if dock is None:
        if not create:
            return None
        panel = AssistantPanel(application)
        dock = AssistantDock(panel, application)
        application.addDockWidget(QtCore.Qt.RightDockWidgetArea, dock)
        application._radiollava_dock = dock
        from .console import publish

        publish(application, panel)
    if show:
        dock.show()
        dock.raise_()
    return dock.panel
