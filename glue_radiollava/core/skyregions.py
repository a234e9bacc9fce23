"""Model boxes → mosaic pixel boxes → sky regions and catalogue tables.

Boxes go through the picture's Transform (nothing else does coordinate arithmetic). Regions are
astropy ``regions`` rectangles in sky coordinates, labelled and coloured by class; catalogues are
astropy Tables (RA, Dec, width, height, class, score).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import RadioLlavaError
from .files import atomic_write, atomic_write_text
from .transform import Transform

CLASS_COLOURS = {
    "COMPACT": "cyan", "EXTENDED": "orange", "EXTENDED-MULTISLAND": "magenta", "SPURIOUS": "red",
    "ARTIFACT": "red", "ARTEFACT": "red", "FLAGGED": "yellow", "RADIO-GALAXY": "lime",
    "DIFFUSE": "green", "DIFFUSE-LARGE": "green", "FR-I": "blue", "FR-II": "purple",
}
DEFAULT_COLOUR = "white"
ASK_COLOUR = "#ff3ea5"      # the regions a person asks about: a pink no class uses, seen on noise

REGION_FORMATS = {".reg": "ds9", ".ds9": "ds9", ".crtf": "crtf", ".fits": "fits", ".fit": "fits"}
TABLE_FORMATS = {".ecsv": "ascii.ecsv", ".csv": "ascii.csv", ".fits": "fits", ".fit": "fits"}


def colour_for(label: str | None) -> str:
    return CLASS_COLOURS.get((label or "").upper(), DEFAULT_COLOUR)


@dataclass(frozen=True)
class SkyBox:
    """A model box placed on the mosaic: pixel edges, sky centre and angular size."""

    label: str | None
    picture_box: tuple[float, float, float, float]     # the model's own convention (yolo: xc, yc, w, h)
    pixel_box: tuple[float, float, float, float]       # mosaic [X0, Y0, X1, Y1], 0-based, edges
    ra: float                                          # centre, degrees, in the image's frame
    dec: float
    width_arcsec: float
    height_arcsec: float
    score: float | None = None
    frame: str = "icrs"

    def to_dict(self) -> dict:
        return {"label": self.label, "picture_box": [round(v, 6) for v in self.picture_box],
                "pixel_box": [round(v, 4) for v in self.pixel_box], "ra": self.ra, "dec": self.dec,
                "width_arcsec": self.width_arcsec, "height_arcsec": self.height_arcsec,
                "score": self.score, "frame": self.frame}

    def where(self, digits: int = 5) -> str:
        """The centre with its frame's own axis names: "RA … Dec …", or "l … b …" for galactic images."""
        lon, lat = ("l", "b") if self.frame == "galactic" else ("RA", "Dec")
        return f"{lon} {self.ra:.{digits}f} {lat} {self.dec:+.{digits}f}"

    def on_image(self, wcs) -> "SkyBox":
        """This box put on another image (a transcript's box on a mosaic): its pixel box through
        that image's WCS. A box the projection cannot place (e.g. on the far side) is an error."""
        from dataclasses import replace

        return replace(self, pixel_box=self.to_pixel(wcs))

    def to_pixel(self, wcs) -> tuple[float, float, float, float]:
        """The pixel box (edges X0, Y0, X1, Y1) of this sky box on an image with celestial ``wcs``,
        measured as ``pixel_box_to_sky`` measures the other way (``regions``' rectangle)."""
        import astropy.units as u
        from astropy.coordinates import SkyCoord
        from regions import RectangleSkyRegion

        try:
            centre = SkyCoord(self.ra * u.deg, self.dec * u.deg, frame=self.frame)
            region = RectangleSkyRegion(centre, self.width_arcsec * u.arcsec,
                                        self.height_arcsec * u.arcsec).to_pixel(wcs)
            c = region.center
            box = (c.x - region.width / 2, c.y - region.height / 2, c.x + region.width / 2, c.y + region.height / 2)
        except (ValueError, TypeError, np.linalg.LinAlgError) as exc:
            raise RadioLlavaError(f"box at {self.where()} cannot be placed on this image ({exc})") from None
        if not np.all(np.isfinite(box)):
            raise RadioLlavaError(f"box at {self.where()} does not project onto this image")
        return tuple(float(v) for v in box)

    @classmethod
    def from_dict(cls, d: dict) -> "SkyBox":
        return cls(d.get("label"), tuple(d["picture_box"]), tuple(d["pixel_box"]), float(d["ra"]),
                   float(d["dec"]), float(d["width_arcsec"]), float(d["height_arcsec"]),
                   d.get("score"), d.get("frame", "icrs"))

    def pixel_region(self):
        from regions import PixCoord, RectanglePixelRegion

        X0, Y0, X1, Y1 = self.pixel_box
        return RectanglePixelRegion(PixCoord((X0 + X1) / 2, (Y0 + Y1) / 2), X1 - X0, Y1 - Y0)


def map_box(box, transform: Transform) -> SkyBox:
    """A valid parsed PictureBox (normalised edges) → SkyBox through ``transform``."""
    if not box.valid:
        raise RadioLlavaError(f"box {box.raw or box.to_yolo()} is flagged ({box.problem}); not mapped")
    X0, Y0, X1, Y1 = transform.box_to_mosaic(box.x0, box.y0, box.x1, box.y1)
    return pixel_box_to_sky(box.label, (X0, Y0, X1, Y1), transform.wcs, box.score, tuple(box.to_yolo()))


def pixel_boxes_to_sky(boxes, wcs):
    """Pixel boxes (N × 4 edges X0, Y0, X1, Y1) → sky centres and angular sizes, vectorised:
    ``(lon_deg, lat_deg, width_arcsec, height_arcsec, frame)``. The width is the great-circle
    distance between the midpoints of the left and right edges, the height that of the bottom and
    top ones. The one measure of a box on the sky: model boxes and the simulator's truth use it."""
    from astropy.coordinates import angular_separation

    from .transform import pixel_to_sky

    b = np.asarray(boxes, float).reshape(-1, 4)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    sky = pixel_to_sky(wcs, np.concatenate([cx, b[:, 0], b[:, 2], cx, cx]),
                       np.concatenate([cy, cy, cy, b[:, 1], b[:, 3]]))
    lon = sky.spherical.lon.rad.reshape(5, -1)
    lat = sky.spherical.lat.rad.reshape(5, -1)
    width = np.degrees(angular_separation(lon[1], lat[1], lon[2], lat[2])) * 3600
    height = np.degrees(angular_separation(lon[3], lat[3], lon[4], lat[4])) * 3600
    return np.degrees(lon[0]), np.degrees(lat[0]), width, height, sky.frame.name


def pixel_box_to_sky(label: str | None, pixel_box, wcs, score: float | None = None,
                     picture_box=(0.0, 0.0, 0.0, 0.0)) -> SkyBox:
    """A mosaic pixel box (edges X0, Y0, X1, Y1) → SkyBox through the mosaic's celestial ``wcs``."""
    box = tuple(float(v) for v in pixel_box)
    lon, lat, width, height, frame = pixel_boxes_to_sky([box], wcs)
    return SkyBox(label, tuple(picture_box), box, float(lon[0]), float(lat[0]), float(width[0]),
                  float(height[0]), score, frame)


def map_boxes(boxes, transform: Transform) -> tuple[list[SkyBox], list[str]]:
    """Map every valid box; flagged boxes are reported in the warnings, never mapped silently."""
    mapped, warnings = [], []
    for box in boxes:
        if box.valid:
            mapped.append(map_box(box, transform))
        else:
            warnings.append(f"box {box.raw or box.to_yolo()} not mapped: {box.problem}")
    return mapped, warnings


def mosaic_boxes(boxes, transform: Transform) -> list[tuple[str | None, tuple[float, float, float, float]]]:
    """The valid boxes as (label, mosaic pixel box) through ``transform``: what a picture without a
    celestial WCS (a PNG) still has, and what detection scoring compares."""
    return [(b.label, transform.box_to_mosaic(b.x0, b.y0, b.x1, b.y1)) for b in boxes if b.valid]


def to_regions(boxes: list[SkyBox], wcs, source: str = "radio-llava"):
    """SkyBoxes → ``regions.Regions`` of sky rectangles, with class label text and colour."""
    from regions import Regions

    out = []
    for i, b in enumerate(boxes, 1):
        region = b.pixel_region().to_sky(wcs)
        region.meta["text"] = f"{b.label or 'box'} #{i} ({source})"
        region.meta["label"] = f"{b.label or 'box'} #{i}"
        region.visual["color"] = colour_for(b.label)
        out.append(region)
    return Regions(out)


def write_regions(path: str | Path, boxes: list[SkyBox], wcs, format: str | None = None) -> Path:
    """Write regions as DS9 (.reg), CRTF (.crtf) or FITS (.fits); format from the suffix.

    DS9 and CRTF files hold sky rectangles; FITS region files can only hold pixel shapes, so they
    are written in the pixel coordinates of the image the boxes were mapped onto.
    """
    fmt = format or REGION_FORMATS.get(Path(path).suffix.lower())
    if fmt not in ("ds9", "crtf", "fits"):
        raise RadioLlavaError(f"{path}: unknown region format; use .reg (DS9), .crtf (CRTF) or .fits")
    regs = to_regions(boxes, wcs)
    if fmt == "fits":  # the FITS region format stores pixel shapes only: the image's pixels
        regs = type(regs)([r.to_pixel(wcs) for r in regs])
    if fmt == "ds9" and not boxes:   # `regions` writes 0 bytes: a valid file says its frame and "none"
        from astropy.wcs.utils import wcs_to_celestial_frame

        frame = wcs_to_celestial_frame(wcs).name if wcs is not None else "icrs"
        return atomic_write_text(path, f"# Region file format: DS9 astropy/regions\n# 0 boxes\n{frame}\n")
    return atomic_write(path, lambda tmp: regs.write(tmp, format=fmt, overwrite=True))


def catalogue(boxes: list[SkyBox], extra: dict | None = None, meta: dict | None = None):
    """SkyBoxes → astropy Table with ra, dec (deg), width, height (arcsec), class, score, pixel box.

    ``extra``: more columns (name → one value per box); ``meta``: more header keywords.
    """
    import astropy.units as u
    from astropy.table import Table

    n = len(boxes)
    t = Table()
    t["ra"] = np.array([b.ra for b in boxes], float) * u.deg
    t["dec"] = np.array([b.dec for b in boxes], float) * u.deg
    t["width"] = np.array([b.width_arcsec for b in boxes], float) * u.arcsec
    t["height"] = np.array([b.height_arcsec for b in boxes], float) * u.arcsec
    t["class"] = np.array([b.label or "" for b in boxes], dtype=str) if n else np.array([], dtype="U1")
    t["score"] = np.array([np.nan if b.score is None else b.score for b in boxes], float)
    for i, name in enumerate(("x0", "y0", "x1", "y1")):
        t[name] = np.array([b.pixel_box[i] for b in boxes], float)
    for name, values in (extra or {}).items():     # give typed arrays: an empty column keeps its type
        t[name] = np.asarray(values)
    t.meta["frame"] = boxes[0].frame if boxes else "icrs"
    t.meta["PIXCONV"] = "x0 y0 x1 y1: 0-based mosaic pixels, box edges"
    t.meta.update(meta or {})
    return t


def write_catalogue(path: str | Path, boxes: list[SkyBox], format: str | None = None,
                    extra: dict | None = None, meta: dict | None = None) -> Path:
    fmt = format or TABLE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise RadioLlavaError(f"{path}: unknown table format; use .ecsv, .csv or .fits")
    table = catalogue(boxes, extra, meta)
    return atomic_write(path, lambda tmp: table.write(tmp, format=fmt, overwrite=True))


SKY_REGION_SUFFIXES = (".reg", ".ds9", ".crtf")


def boxes_format(path: str | Path) -> str:
    """"regions" for .reg/.ds9/.crtf, "table" for .ecsv/.csv/.fits (where FITS means a table)."""
    suffix = Path(path).suffix.lower()
    if suffix in SKY_REGION_SUFFIXES:
        return "regions"
    if suffix in TABLE_FORMATS:
        return "table"
    raise RadioLlavaError(f"{path}: use regions (.reg, .crtf) or a table (.ecsv, .csv, .fits)")


def write_boxes(path: str | Path, boxes: list[SkyBox], wcs, extra: dict | None = None,
                meta: dict | None = None) -> Path:
    """Sky regions or a catalogue, as the suffix says (``boxes_format``); ``extra``/``meta`` go to tables."""
    if boxes_format(path) == "regions":
        return write_regions(path, boxes, wcs)
    return write_catalogue(path, boxes, extra=extra, meta=meta)
