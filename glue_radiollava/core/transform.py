"""The one object that knows how a model's picture sits on the mosaic and on the sky.

Coordinates, all 0-based with pixel centres on integers (numpy/astropy convention):

- picture pixels ``(p, q)``: columns and rows of the picture the model sees (row 0 at its top);
- normalised picture coordinates ``(u, v)`` in [0, 1]: edges, y from the picture's top
  (the model's box convention); ``u = (p + 0.5) / picture_width``;
- cutout pixels ``(x, y)``: columns and rows of the cutout array (FITS row 0 first);
- mosaic pixels ``(X, Y)``: ``X = x + x0``, ``Y = y + y0``;
- sky: through the mosaic's celestial WCS.

Picture ⇄ cutout is affine on each axis: an optional vertical flip (north-up pictures), a scale,
and a padding offset (resizing onto a padded square). Everything is exact and invertible.

Some processors resize the picture once more before the model sees it, and some models answer in
pixels of THAT picture (Qwen2.5-VL: ``smart_resize`` to sides that are multiples of 28). The
``input_width``/``input_height`` fields hold that size (``with_input_size``; None: no such resize
known) and the ``input_*`` methods map those resized-pixel edges to normalised picture edges:
the resize stretches the whole picture, so an edge at ``x`` of ``input_width`` is ``u = x / input_width``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import RadioLlavaError


def pixel_to_sky(wcs, x, y):
    """0-based pixel coordinates → SkyCoord through a celestial WCS (the one place outside the
    Transform's own methods that calls the WCS; region shapes go through ``regions``)."""
    return wcs.pixel_to_world(x, y)


def sky_to_pixel(wcs, coord) -> tuple[np.ndarray, np.ndarray]:
    """SkyCoord → 0-based pixel coordinates (float arrays) through a celestial WCS."""
    x, y = wcs.world_to_pixel(coord)
    return np.asarray(x, float), np.asarray(y, float)


def radec_to_pixel(wcs, ra_deg, dec_deg) -> tuple[np.ndarray, np.ndarray]:
    """Catalogue longitudes/latitudes in degrees (the WCS's own frame) → 0-based pixel coordinates."""
    x, y = wcs.world_to_pixel_values(np.asarray(ra_deg, float), np.asarray(dec_deg, float))
    return np.asarray(x, float), np.asarray(y, float)


def index_box_to_edges(x0, y0, x1, y1) -> tuple[float, float, float, float]:
    """An index box ``[x0, x1) × [y0, y1)`` (array slices) → its edges in pixel coordinates
    (pixel centres on integers, so edges sit half a pixel out: x0 - 0.5 … x1 - 0.5)."""
    return x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5


def index_box_around(cx: float, cy: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The ``width`` × ``height`` index box centred (to the nearest pixel) on pixel coordinate (cx, cy)."""
    ix0, iy0 = int(round(cx + 0.5 - width / 2)), int(round(cy + 0.5 - height / 2))
    return ix0, iy0, ix0 + int(width), iy0 + int(height)


@dataclass(frozen=True)
class Transform:
    """Where a model's picture sits on the mosaic and the sky: exact and invertible.

    Parameters
    ----------
    cutout_width, cutout_height : int
        The cutout's size in mosaic pixels.
    picture_width, picture_height : int
        The picture's size (what the model sees).
    x0, y0 : int
        The mosaic index of the cutout's pixel (0, 0).
    scale_x, scale_y, pad_x, pad_y, flip_y
        Picture pixels per cutout pixel, padding, and whether north is up.
    wcs : astropy.wcs.WCS, optional
        The mosaic's celestial WCS (None: pixels only).
    """

    cutout_width: int
    cutout_height: int
    picture_width: int
    picture_height: int
    x0: int = 0                 # mosaic index of cutout pixel (0, 0)
    y0: int = 0
    scale_x: float = 1.0        # picture pixels per cutout pixel
    scale_y: float = 1.0
    pad_x: float = 0.0          # picture pixels of padding left of / above the cutout
    pad_y: float = 0.0
    flip_y: bool = False        # True: picture top = last cutout row (north up)
    wcs: object = None          # the mosaic's celestial WCS (None: pixel-only)
    input_width: int | None = None    # the picture's size after the model processor's own resize
    input_height: int | None = None

    @classmethod
    def identity(cls, width: int, height: int, x0: int = 0, y0: int = 0, wcs=None) -> "Transform":
        return cls(width, height, width, height, x0, y0, wcs=wcs)

    def with_input_size(self, width: int, height: int) -> "Transform":
        """This transform, knowing that the processor resizes the picture to ``width`` × ``height``."""
        from dataclasses import replace

        if width <= 0 or height <= 0:
            raise RadioLlavaError(f"processor input size {width}x{height}: both sides must be positive")
        return replace(self, input_width=int(width), input_height=int(height))

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the processor's resized picture, or None when not known."""
        if self.input_width is None or self.input_height is None:
            return None
        return self.input_width, self.input_height

    # ------------------------------------------------------- processor input ⇄ picture
    def _need_input(self):
        if self.input_size is None:
            raise RadioLlavaError("this picture's processor resize is not known, so resized-pixel boxes "
                                  "cannot be mapped (Transform.with_input_size)")

    def input_to_normalised(self, x, y):
        """Edge positions in the processor's resized picture → normalised picture edges."""
        self._need_input()
        return np.asarray(x, float) / self.input_width, np.asarray(y, float) / self.input_height

    def normalised_to_input(self, u, v):
        self._need_input()
        return np.asarray(u, float) * self.input_width, np.asarray(v, float) * self.input_height

    def input_box_to_normalised(self, x0, y0, x1, y1) -> tuple[float, float, float, float]:
        """A resized-pixel box (edges, as the model wrote them, unsorted) → normalised edges."""
        u0, v0 = self.input_to_normalised(x0, y0)
        u1, v1 = self.input_to_normalised(x1, y1)
        return float(u0), float(v0), float(u1), float(v1)

    def normalised_box_to_input(self, u0, v0, u1, v1) -> tuple[float, float, float, float]:
        a, b = self.normalised_to_input(u0, v0)
        c, d = self.normalised_to_input(u1, v1)
        return float(a), float(b), float(c), float(d)

    # ------------------------------------------------------- picture ⇄ cutout
    def picture_to_cutout(self, p, q):
        p, q = np.asarray(p, float), np.asarray(q, float)
        ex = (p + 0.5 - self.pad_x) / self.scale_x          # cutout edge coordinate
        ey = (q + 0.5 - self.pad_y) / self.scale_y
        if self.flip_y:
            ey = self.cutout_height - ey
        return ex - 0.5, ey - 0.5

    def cutout_to_picture(self, x, y):
        ex, ey = np.asarray(x, float) + 0.5, np.asarray(y, float) + 0.5
        if self.flip_y:
            ey = self.cutout_height - ey
        return ex * self.scale_x + self.pad_x - 0.5, ey * self.scale_y + self.pad_y - 0.5

    # ------------------------------------------------------- cutout ⇄ mosaic
    def cutout_to_mosaic(self, x, y):
        return np.asarray(x, float) + self.x0, np.asarray(y, float) + self.y0

    def mosaic_to_cutout(self, X, Y):
        return np.asarray(X, float) - self.x0, np.asarray(Y, float) - self.y0

    # ------------------------------------------------------- compositions
    def picture_to_mosaic(self, p, q):
        return self.cutout_to_mosaic(*self.picture_to_cutout(p, q))

    def mosaic_to_picture(self, X, Y):
        return self.cutout_to_picture(*self.mosaic_to_cutout(X, Y))

    def normalised_to_picture(self, u, v):
        return (np.asarray(u, float) * self.picture_width - 0.5,
                np.asarray(v, float) * self.picture_height - 0.5)

    def picture_to_normalised(self, p, q):
        return ((np.asarray(p, float) + 0.5) / self.picture_width,
                (np.asarray(q, float) + 0.5) / self.picture_height)

    def normalised_to_mosaic(self, u, v):
        return self.picture_to_mosaic(*self.normalised_to_picture(u, v))

    def mosaic_to_normalised(self, X, Y):
        return self.picture_to_normalised(*self.mosaic_to_picture(X, Y))

    def mosaic_to_sky(self, X, Y):
        self._need_wcs()
        return pixel_to_sky(self.wcs, X, Y)

    def sky_to_mosaic(self, coord):
        self._need_wcs()
        return sky_to_pixel(self.wcs, coord)

    def cutout_to_sky(self, x, y):
        return self.mosaic_to_sky(*self.cutout_to_mosaic(x, y))

    def picture_to_sky(self, p, q):
        return self.mosaic_to_sky(*self.picture_to_mosaic(p, q))

    def sky_to_picture(self, coord):
        return self.mosaic_to_picture(*self.sky_to_mosaic(coord))

    def _need_wcs(self):
        if self.wcs is None:
            raise RadioLlavaError("this picture has no celestial WCS, so boxes cannot go to the sky")

    # ------------------------------------------------------- boxes
    def box_to_mosaic(self, u0: float, v0: float, u1: float, v1: float) -> tuple[float, float, float, float]:
        """A normalised picture box (edges) → mosaic pixel box ``[X0, Y0, X1, Y1]`` (edges, X0<X1)."""
        # Picture edges sit half a pixel from centres, so map the edge positions through the
        # centre-based transform by shifting: edge u ↔ picture centre coordinate u*W - 0.5.
        Xa, Ya = self.normalised_to_mosaic(u0, v0)
        Xb, Yb = self.normalised_to_mosaic(u1, v1)
        return (float(min(Xa, Xb)), float(min(Ya, Yb)), float(max(Xa, Xb)), float(max(Ya, Yb)))

    def mosaic_box_to_normalised(self, X0, Y0, X1, Y1) -> tuple[float, float, float, float]:
        """The inverse of ``box_to_mosaic``: mosaic edges → normalised picture box (u0<u1, v0<v1)."""
        ua, va = self.mosaic_to_normalised(X0, Y0)
        ub, vb = self.mosaic_to_normalised(X1, Y1)
        return (float(min(ua, ub)), float(min(va, vb)), float(max(ua, ub)), float(max(va, vb)))

    @classmethod
    def from_dict(cls, d: dict, wcs=None) -> "Transform":
        """The inverse of ``to_dict`` (which leaves out the WCS: pass it here)."""
        known = set(cls.__dataclass_fields__) - {"wcs"}
        return cls(**{k: v for k, v in d.items() if k in known}, wcs=wcs)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "wcs"}
        if self.input_size is None:       # unchanged dicts for pictures without a processor resize
            d.pop("input_width"), d.pop("input_height")
        return {k: (bool(v) if isinstance(v, (bool, np.bool_)) else v) for k, v in d.items()}
