"""The Boxes tab of the assistant panel: every box the model returned, as glue subsets and table rows
(class, RA, Dec, size, score) with Show and Delete, and their export as sky regions or a catalogue.

Like the Scan and Find-more sections it works with the panel it lives in (``panel.session``,
``panel.error`` / ``panel.info``, the file dialog) and adds nothing to the model's conversation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qtpy import QtCore, QtWidgets

from ..core.errors import RadioLlavaError
from . import glue_data


@dataclass
class BoxRow:
    box: object                  # core SkyBox
    group: object                # glue SubsetGroup
    wcs: object
    visible: bool = True


class BoxesSection(QtWidgets.QWidget):
    changed = QtCore.Signal()            # rows were added or deleted

    def __init__(self, panel, parent=None):
        super().__init__(parent)
        self.panel = panel
        self.rows: list[BoxRow] = []
        self.counts: dict[str, int] = {}    # boxes so far per class: labels count up ("EXTENDED #3")
        layout = QtWidgets.QVBoxLayout(self)
        self.table = QtWidgets.QTableWidget(0, 7)
        self.table.setHorizontalHeaderLabels(["Show", "Class", "RA (deg)", "Dec (deg)", "Width (\")",
                                              "Height (\")", "Score"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.setMinimumHeight(60)
        self.table.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Ignored)
        layout.addWidget(self.table)
        row = QtWidgets.QHBoxLayout()
        self.delete_button = QtWidgets.QPushButton("Delete")
        self.delete_button.clicked.connect(lambda: self.delete())
        self.export_regions_button = QtWidgets.QPushButton("Export regions…")
        self.export_regions_button.clicked.connect(self._export_regions_dialog)
        self.export_table_button = QtWidgets.QPushButton("Export catalogue…")
        self.export_table_button.clicked.connect(self._export_catalogue_dialog)
        for w in (self.delete_button, self.export_regions_button, self.export_table_button):
            row.addWidget(w)
        layout.addLayout(row)
        self._update_buttons()

    # ------------------------------------------------------------ rows
    def add(self, boxes, region) -> list[BoxRow]:
        """Overlay SkyBoxes (pixel boxes of ``region``'s image) as glue subsets and table rows."""
        numbers = []
        for box in boxes:
            key = box.label or "BOX"
            self.counts[key] = self.counts.get(key, 0) + 1
            numbers.append(self.counts[key])
        groups = glue_data.add_box_subsets(self.panel.session, region.x_att, region.y_att, boxes, numbers)
        rows = [BoxRow(b, g, region.image.wcs) for b, g in zip(boxes, groups)]
        for row in rows:
            self._append_row(row)
        self.rows.extend(rows)
        self._changed()
        return rows

    def set_visible(self, index: int, visible: bool):
        row = self.rows[index]
        row.visible = visible
        glue_data.set_group_visible(self.panel.application, row.group, visible)
        item = self.table.item(index, 0)
        if (item.checkState() == QtCore.Qt.Checked) != visible:
            self.table.blockSignals(True)
            item.setCheckState(QtCore.Qt.Checked if visible else QtCore.Qt.Unchecked)
            self.table.blockSignals(False)

    def delete(self, indices=None):
        """Delete the selected rows (or ``indices``) and their subsets from the session."""
        if indices is None:
            indices = sorted({i.row() for i in self.table.selectedIndexes()})
        for index in sorted(indices, reverse=True):
            row = self.rows.pop(index)
            glue_data.remove_group(self.panel.session.data_collection, row.group)
            self.table.removeRow(index)
        self._changed()

    def _append_row(self, row: BoxRow):
        b = row.box
        self.table.blockSignals(True)
        r = self.table.rowCount()
        self.table.insertRow(r)
        show = QtWidgets.QTableWidgetItem()
        show.setFlags(QtCore.Qt.ItemIsUserCheckable | QtCore.Qt.ItemIsEnabled | QtCore.Qt.ItemIsSelectable)
        show.setCheckState(QtCore.Qt.Checked if row.visible else QtCore.Qt.Unchecked)
        self.table.setItem(r, 0, show)
        values = [row.group.label if row.group is not None else (b.label or "BOX"), f"{b.ra:.6f}",
                  f"{b.dec:+.6f}", f"{b.width_arcsec:.1f}", f"{b.height_arcsec:.1f}",
                  "" if b.score is None else f"{b.score:.3f}"]
        for c, value in enumerate(values, 1):
            self.table.setItem(r, c, QtWidgets.QTableWidgetItem(value))
        self.table.blockSignals(False)

    def _on_item_changed(self, item):
        if item.column() != 0 or item.row() >= len(self.rows):
            return
        self.set_visible(item.row(), item.checkState() == QtCore.Qt.Checked)

    def _changed(self):
        self._update_buttons()
        self.changed.emit()

    def _update_buttons(self):
        """Export and delete only when there are boxes."""
        for button in (self.delete_button, self.export_regions_button, self.export_table_button):
            button.setEnabled(bool(self.rows))

    # ------------------------------------------------------------ export
    def _boxes_and_wcs(self):
        if not self.rows:
            raise RadioLlavaError("there are no boxes to export yet")
        return [r.box for r in self.rows], self.rows[0].wcs

    def export_regions(self, path, overwrite: bool = False) -> Path | None:
        """The boxes as sky regions; an existing file is replaced only with ``overwrite`` (the
        file dialog asks first and passes it)."""
        from ..core.skyregions import write_regions

        return self._export(path, overwrite, "the region file", lambda boxes, wcs: write_regions(path, boxes, wcs),
                            "regions")

    def export_catalogue(self, path, overwrite: bool = False) -> Path | None:
        from ..core.skyregions import write_catalogue

        return self._export(path, overwrite, "the catalogue", lambda boxes, wcs: write_catalogue(path, boxes), "rows")

    def _export(self, path, overwrite, what, write, unit) -> Path | None:
        from ..core.files import check_outputs

        try:
            check_outputs({what: path}, overwrite=overwrite, hint="pass overwrite=True")
            boxes, wcs = self._boxes_and_wcs()
            out = write(boxes, wcs)
        except RadioLlavaError as exc:
            self.panel.error(str(exc))
            return None
        self.panel.info(f"wrote {len(boxes)} {unit} to {out}")
        return out

    def _export_regions_dialog(self):
        path = self.panel.ask_path(True, "Export regions", "DS9 (*.reg);;CRTF (*.crtf);;FITS (*.fits)")
        if path:
            self.export_regions(path, overwrite=True)      # Qt's dialog asked before replacing

    def _export_catalogue_dialog(self):
        path = self.panel.ask_path(True, "Export catalogue", "ECSV (*.ecsv);;CSV (*.csv);;FITS (*.fits)")
        if path:
            self.export_catalogue(path, overwrite=True)
