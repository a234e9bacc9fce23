"""Run model loading and generation off the GUI thread; results come back as Qt signals.

Signals are delivered on the GUI thread (queued connections), so slots may touch glue objects.
"""

from __future__ import annotations

import logging
import sys
import threading

from qtpy import QtCore

from ..core.errors import RadioLlavaError

log = logging.getLogger(__name__)


class Job(QtCore.QThread):
    """Call ``func(on_text=..., cancel=...)`` in a thread.

    ``text`` carries streamed pieces of text, ``succeeded`` the return value, ``failed`` a one-line
    message. ``cancel()`` asks the function to stop (it sees ``cancel.is_set()``).
    """

    text = QtCore.Signal(str)
    succeeded = QtCore.Signal(object)
    failed = QtCore.Signal(str)

    def __init__(self, func, name: str = "job", parent=None):
        super().__init__(parent)
        self.func = func
        self.name = name
        self.cancel_event = threading.Event()

    def on(self, signal, slot):
        """Connect ``slot`` so that it always runs on the GUI thread (a queued connection:
        a lambda would otherwise run in the worker thread that emits the signal)."""
        signal.connect(slot, QtCore.Qt.QueuedConnection)
        return self

    def run(self):
        try:
            result = self.func(on_text=self.text.emit, cancel=self.cancel_event)
        except RadioLlavaError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # shown in the panel; glue keeps running
            log.exception("radiollava %s failed", self.name)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.failed.emit(f"{self.name} failed: {type(exc).__name__}: {first}"[:500])
        else:
            self.succeeded.emit(result)

    def cancel(self):
        self.cancel_event.set()

    def stop_and_wait(self, timeout_ms: int = 10000) -> bool:
        """Cancel and wait for the thread to end (on close); True when it ended."""
        self.cancel()
        return self.wait(timeout_ms)


class _Relay(QtCore.QObject):
    text = QtCore.Signal(str)


class GuiThreadStream:
    """A stderr wrapper that hands writes from worker threads to the GUI thread.

    glue replaces ``sys.stderr`` with its log window, a Qt widget: a warning or a progress bar
    printed by transformers in a worker thread would otherwise edit that widget off the GUI thread.
    """

    def __init__(self, target):
        self.target = target
        self._relay = _Relay()
        self._relay.text.connect(self._write_here, QtCore.Qt.QueuedConnection)

    def _on_gui_thread(self) -> bool:
        try:
            return QtCore.QThread.currentThread() is self._relay.thread()
        except RuntimeError:  # Qt already shut down
            return True

    def write(self, text):
        if self._on_gui_thread():
            self._write_here(text)
        else:
            self._relay.text.emit(text)
        return len(text)

    def _write_here(self, text):
        try:
            self.target.write(text)
        except RuntimeError:  # the glue log window is gone (application closed)
            sys.__stderr__.write(text)

    def flush(self):
        if self._on_gui_thread():
            try:
                self.target.flush()
            except (RuntimeError, AttributeError):
                pass

    def __getattr__(self, name):
        return getattr(self.target, name)


def protect_stderr():
    """Wrap ``sys.stderr`` (once) so that worker threads never write into Qt widgets directly."""
    if not isinstance(sys.stderr, GuiThreadStream):
        sys.stderr = GuiThreadStream(sys.stderr)
