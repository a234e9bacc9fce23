"""Helpers for the plugin tests (the GlueApplication fixture ``app`` is in conftest.py)."""

from __future__ import annotations


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
