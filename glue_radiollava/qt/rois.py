"""Many boxes as one glue ROI, so a subset of hundreds of boxes stays quick to compute and draw."""

from __future__ import annotations

import numpy as np
from glue.core.roi import Roi


class BoxesROI(Roi):
    """Many axis-aligned rectangles as one glue ROI (edges exclusive, like ``RectangularROI``).

    ``contains`` paints the boxes when the points form a pixel grid (an image or a viewer's view of
    it): one pass over the points plus the boxes' areas; other points (a linked table) are sorted
    once by x and each box looks only at its own strip.
    """

    def __init__(self, boxes=()):
        self.boxes = np.asarray(boxes, float).reshape(-1, 4)     # xmin, xmax, ymin, ymax

    def defined(self) -> bool:
        return len(self.boxes) > 0

    def center(self):
        return float(self.boxes[:, :2].mean()), float(self.boxes[:, 2:].mean())

    def move_to(self, x, y):
        cx, cy = self.center()
        self.boxes = self.boxes + np.array([x - cx, x - cx, y - cy, y - cy])

    def copy(self):
        return BoxesROI(self.boxes.copy())

    def contains(self, x, y):
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        grid = _grid_axes(x, y)
        if grid is not None:
            mask = self._paint(*grid)
            return mask if x.ndim == 2 else np.broadcast_to(mask, x.shape).copy()
        inside = self._by_strips(x.ravel(), y.ravel()).reshape(x.shape)
        return bool(inside) if inside.ndim == 0 else inside

    def _paint(self, xs, ys) -> np.ndarray:
        mask = np.zeros((ys.size, xs.size), bool)
        for x0, x1, y0, y1 in self.boxes:
            cols, rows = (xs > x0) & (xs < x1), (ys > y0) & (ys < y1)
            if cols.any() and rows.any():
                mask[np.ix_(rows, cols)] = True
        return mask

    def _by_strips(self, x, y) -> np.ndarray:
        order = np.argsort(x, kind="stable")
        xs = x[order]
        inside = np.zeros(x.size, bool)
        for x0, x1, y0, y1 in self.boxes:
            idx = order[np.searchsorted(xs, x0, "right"):np.searchsorted(xs, x1, "left")]
            inside[idx[(y[idx] > y0) & (y[idx] < y1)]] = True
        return inside

    def __gluestate__(self, context):
        return {"boxes": self.boxes.tolist()}

    @classmethod
    def __setgluestate__(cls, rec, context):
        return cls(rec["boxes"])


def _grid_axes(x, y):
    """(x along the last axis, y along the one before) when the points are a grid, else None."""
    if x.ndim < 2 or x.size == 0:
        return None
    x3, y3 = x.reshape(-1, *x.shape[-2:]), y.reshape(-1, *y.shape[-2:])
    xs, ys = x3[0, 0, :], y3[0, :, 0]
    if (x3 == xs).all() and (y3 == ys[:, None]).all():
        return xs, ys
    return None
