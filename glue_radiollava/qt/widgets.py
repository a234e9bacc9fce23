"""Widget policies the dock's sections share."""

from __future__ import annotations

from qtpy import QtCore, QtWidgets


class _WheelGuard(QtCore.QObject):
    """Spin boxes and combos take the mouse wheel only when focused; otherwise the wheel scrolls
    the dock (their parent), so scrolling past a tile-size box never changes it."""

    def eventFilter(self, obj, event):
        if event.type() == QtCore.QEvent.Wheel and not obj.hasFocus():
            parent = obj.parentWidget()
            if parent is not None:
                QtWidgets.QApplication.sendEvent(parent, event)
            return True
        return False


def guard_wheel(root: QtWidgets.QWidget) -> None:
    """Apply the wheel policy to every spin box and combo box under ``root`` (call once, after
    building it)."""
    guard = _WheelGuard(root)
    for widget in root.findChildren((QtWidgets.QAbstractSpinBox, QtWidgets.QComboBox)):
        widget.setFocusPolicy(QtCore.Qt.StrongFocus)       # the wheel no longer gives focus
        widget.installEventFilter(guard)
