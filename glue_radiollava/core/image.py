"""Open radio FITS images and cut regions out of them without reading the whole mosaic."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import RadioLlavaError


@dataclass(frozen=True)
class Beam:
    """The synthesised beam: FWHM axes in arcsec, position angle in degrees."""

    major_arcsec: float
    minor_arcsec: float
    pa_deg: float = 0.0


def _beam_from_header(header) -> Beam | None:
    if "BMAJ" in header and "BMIN" in header:
        try:
            return Beam(float(header["BMAJ"]) * 3600, float(header["BMIN"]) * 3600,
                        float(header.get("BPA", 0.0) or 0.0))
        except (TypeError, ValueError):
            return None
    # AIPS writes the beam into HISTORY: "AIPS   CLEAN BMAJ=  1.5E-03 BMIN=  1.5E-03 BPA=   0.00"
    for card in header.get("HISTORY", []):
        m = re.search(r"BMAJ=\s*([-+.\dEe]+)\s+BMIN=\s*([-+.\dEe]+)\s+BPA=\s*([-+.\dEe]+)", str(card))
        if m:
            bmaj, bmin, bpa = (float(v) for v in m.groups())
            return Beam(bmaj * 3600, bmin * 3600, bpa)
    return None


class RadioImage:
    """One 2-D celestial plane of a FITS file, memory-mapped.

    ``data`` is a lazy 2-D view of the file: slicing it reads only the slice.
    ``wcs`` is the 2-D celestial WCS; ``beam`` comes from BMAJ/BMIN/BPA (or AIPS history).
    """

    def __init__(self, data, wcs, header, path: str | None = None, hdu: int | str = 0,
                 scale: tuple[float, float] = (1.0, 0.0), hdul=None):
        self.data = data
        self.wcs = wcs
        self.header = header
        self.path = path
        self.hdu = hdu
        self.beam = _beam_from_header(header)
        self._scale = scale  # (BSCALE, BZERO), applied to cut pixels only
        self._hdul = hdul
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path, hdu: int | str | None = None, plane: int | None = None) -> "RadioImage":
        """Open ``path`` (lazily: nothing is read until a cutout) at image HDU ``hdu`` (default: the
        first with an image); ``plane``: which plane of a cube (counted over the non-celestial axes)."""
        from astropy.io import fits
        from astropy.utils.exceptions import AstropyUserWarning

        path = str(path)
        if not Path(path).is_file():
            raise RadioLlavaError(f"{path}: no such file; give the path of a FITS image")
        try:
            # No memory map: cutouts read through ``hdu.section``, which seeks and reads only the
            # rows asked for (mapped pages of a memmap stay counted in the process's memory, and
            # tile-compressed images cannot be mapped at all).
            with warnings.catch_warnings():      # "may have been truncated": said below, in one line
                warnings.simplefilter("ignore", AstropyUserWarning)
                hdul = fits.open(path, memmap=False, mode="readonly", do_not_scale_image_data=True,
                                 ignore_missing_simple=False)
        except (OSError, ValueError) as exc:
            raise RadioLlavaError(f"{path} is not a readable FITS file ({exc}); "
                                  "give a FITS image (.fits)") from None
        images = [i for i, h in enumerate(hdul)
                  if h.is_image and h.header.get("NAXIS", 0) >= 2]
        if hdu is None:
            if not images:
                hdul.close()
                raise RadioLlavaError(f"{path} has no image HDU (only tables or empty HDUs)")
            index = images[0]
        else:
            try:
                index = hdul.index_of(int(hdu) if str(hdu).lstrip("-").isdigit() else hdu)
                hdul[index]
            except (KeyError, IndexError):
                hdul.close()
                raise RadioLlavaError(f"{path} has no HDU {hdu!r}; it has {len(hdul)} HDUs, "
                                      f"images at {images}") from None
            if index not in images:
                hdul.close()
                raise RadioLlavaError(f"HDU {hdu!r} of {path} is not an image; images are at {images}")
        h = hdul[index]
        info = h.fileinfo() or {}
        size = Path(path).stat().st_size
        need = info.get("datLoc", 0) + info.get("datSpan", 0) - 2879   # the last block's padding may be missing
        if info.get("datSpan") and need > size:
            hdul.close()
            raise RadioLlavaError(f"{path} is truncated: HDU {index} needs about {need + 2879} bytes, the file has "
                                  f"{size}; copy or download it again")
        image = cls._from_hdu(h, path, index, hdul, plane)
        return image

    @classmethod
    def from_plane(cls, data, wcs, header=None, name: str | None = None) -> "RadioImage":
        """Wrap a 2-D array-like (numpy, memmap, a glue component) and its celestial WCS."""
        if getattr(data, "ndim", 2) != 2:
            raise RadioLlavaError(f"{name or 'the image'}: expected a 2-D plane, got shape {data.shape}")
        if wcs is None or not wcs.has_celestial:
            raise RadioLlavaError(f"{name or 'the image'} has no celestial WCS (RA/Dec or GLON/GLAT); "
                                  "the assistant needs sky coordinates")
        return cls(data, wcs.celestial, header if header is not None else {}, path=name)

    @classmethod
    def from_array(cls, data: np.ndarray, header) -> "RadioImage":
        """Wrap an in-memory array and a FITS header (tests, glue data)."""
        from astropy.io import fits

        return cls._from_hdu(fits.ImageHDU(np.asarray(data), header=header), None, 0, None)

    @classmethod
    def _from_hdu(cls, h, path, index, hdul, plane: int | None = None) -> "RadioImage":
        from astropy.io.fits.verify import VerifyWarning
        from astropy.wcs import WCS, FITSFixedWarning

        name = path or "the image"
        header = h.header
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            warnings.simplefilter("ignore", VerifyWarning)  # e.g. TABs in FIRST COMMENT cards
            try:
                full = WCS(header)
            except Exception as exc:  # astropy raises many kinds for broken headers
                raise RadioLlavaError(f"{name}: cannot read its WCS ({exc})") from None
        if not full.has_celestial:
            raise RadioLlavaError(f"{name} (HDU {index}) has no celestial WCS (RA/Dec or GLON/GLAT); "
                                  "the assistant needs sky coordinates")
        celestial = full.celestial
        if sorted([full.wcs.lng, full.wcs.lat]) != [0, 1]:
            raise RadioLlavaError(f"{name}: the celestial axes are not the first two FITS axes")
        shape = h.shape
        if not shape or 0 in shape:
            raise RadioLlavaError(f"{name} HDU {index} holds no data")
        extra = tuple(shape[:-2])
        planes = int(np.prod(extra)) if extra else 1
        warn = []
        if plane is not None and not 0 <= plane < planes:
            raise RadioLlavaError(f"--plane {plane}: {name} has {planes} plane(s) (shape {shape}); "
                                  f"give 0 to {planes - 1}")
        if planes > 1:
            chosen = plane or 0
            warn.append(f"{name} is a cube of {planes} planes (shape {shape}); using plane {chosen}"
                        + ("" if plane is not None else " (--plane N chooses another)"))
        lead = tuple(int(i) for i in np.unravel_index(plane or 0, extra)) if extra else ()
        data = _Plane(h.section if hdul is not None else h.data, lead)
        scale = (float(header.get("BSCALE", 1.0)), float(header.get("BZERO", 0.0)))
        img = cls(data, celestial, header, path=path, hdu=index, scale=scale, hdul=hdul)
        img.warnings.extend(warn)
        return img

    # ---------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.data.shape)  # (ny, nx)

    @property
    def pixel_scale_arcsec(self) -> tuple[float, float]:
        """Pixel size along x and y in arcsec (projection-plane scales)."""
        from astropy.wcs.utils import proj_plane_pixel_scales

        sx, sy = proj_plane_pixel_scales(self.wcs)
        return float(sx) * 3600, float(sy) * 3600

    @property
    def frame(self) -> str:
        from astropy.wcs.utils import wcs_to_celestial_frame

        return wcs_to_celestial_frame(self.wcs).name

    @property
    def unit(self) -> str:
        return str(self.header.get("BUNIT", "")).strip()

    def close(self) -> None:
        if self._hdul is not None:
            self._hdul.close()
            self._hdul = None

    def read(self, slices) -> np.ndarray:
        """Read ``data[slices]`` as native float32, applying BSCALE/BZERO."""
        out = np.asarray(self.data[slices]).astype(np.float32)
        bscale, bzero = self._scale
        if (bscale, bzero) != (1.0, 0.0):
            out = out * np.float32(bscale) + np.float32(bzero)
        return out

    # ------------------------------------------------------------------ cutouts
    def cutout_pixels(self, x0: int, y0: int, x1: int, y1: int) -> "Cutout":
        """Cut the pixel box ``[x0, x1) × [y0, y1)`` (0-based; may reach past the edges)."""
        x0, y0, x1, y1 = (int(round(v)) for v in (x0, y0, x1, y1))
        if x1 <= x0 or y1 <= y0:
            raise RadioLlavaError(f"pixel box ({x0}, {y0}, {x1}, {y1}) has zero or negative size; "
                                  "give X0 Y0 X1 Y1 with X1 > X0 and Y1 > Y0")
        if max(x1 - x0, y1 - y0) > MAX_CUTOUT_PX:
            raise RadioLlavaError(f"the region is {x1 - x0}×{y1 - y0} pixels; a cutout may be at most {MAX_CUTOUT_PX} "
                                  "pixels a side (the model sees a few hundred): choose a smaller region")
        ny, nx = self.shape
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, nx), min(y1, ny)
        if ix1 <= ix0 or iy1 <= iy0:
            raise RadioLlavaError(f"the region (pixels x {x0}..{x1}, y {y0}..{y1}) lies outside "
                                  f"{self.path or 'the image'} ({nx}×{ny} pixels)")
        pixels = np.full((y1 - y0, x1 - x0), np.nan, dtype=np.float32)
        pixels[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = self.read((slice(iy0, iy1), slice(ix0, ix1)))
        padded = (ix0, iy0, ix1, iy1) != (x0, y0, x1, y1)
        cut = Cutout(pixels, x0, y0, self, padded=padded, warnings=list(self.warnings))
        if not np.isfinite(pixels).any() or np.nanmax(pixels) == np.nanmin(pixels):
            raise RadioLlavaError(f"the cutout at pixels x {x0}..{x1}, y {y0}..{y1} of "
                                  f"{self.path or 'the image'} is blank (all NaN or constant); "
                                  "choose a region with data")
        return cut

    def cutout_sky(self, center, size) -> "Cutout":
        """Cut a box of angular ``size`` (Quantity, or (width, height)) around SkyCoord ``center``.

        astropy's ``Cutout2D`` decides the pixel box (so even sizes round like astropy does);
        pixels are then read from the memory-mapped file, padding what lies off the image.
        """
        import astropy.units as u
        from astropy.nddata import Cutout2D
        from astropy.nddata.utils import NoOverlapError

        w, h = (size, size) if np.ndim(getattr(size, "value", size)) == 0 else size
        for s in (w, h):
            if not isinstance(s, u.Quantity) or s.value <= 0 or not np.isfinite(s.value):
                raise RadioLlavaError(f"size {s} must be a positive angle such as 2arcmin")
        where = f"{center.to_string('decimal')} with size {w}×{h}"
        from astropy.wcs.utils import proj_plane_pixel_scales

        scale = proj_plane_pixel_scales(self.wcs.celestial) * u.deg     # per pixel, x and y
        side = max(float((w / scale[0]).decompose()), float((h / scale[1]).decompose()))
        if side > MAX_CUTOUT_PX:                  # Cutout2D would allocate all of it
            raise RadioLlavaError(f"size {w}×{h} is about {side:.0f} pixels of {self.path or 'the image'}; a "
                                  f"cutout may be at most {MAX_CUTOUT_PX} pixels a side: choose a smaller --size")
        from .transform import sky_to_pixel

        if not np.all(np.isfinite(sky_to_pixel(self.wcs, center))):
            raise RadioLlavaError(f"{where} lies outside {self.path or 'the image'} "
                                  "(it has no pixel position in this projection)")
        try:
            # A zero-stride stand-in: Cutout2D places the box without touching the file.
            stand_in = np.broadcast_to(np.zeros((), dtype=np.float32), self.shape)
            cut = Cutout2D(stand_in, center, (h, w), wcs=self.wcs, mode="partial",
                           fill_value=np.nan, copy=False)
        except NoOverlapError:
            raise RadioLlavaError(f"{where} lies outside {self.path or 'the image'}") from None
        except ValueError as exc:
            raise RadioLlavaError(f"cannot place {center.to_string('decimal')}: {exc}") from None
        # origin_original is where the overlap starts in the image, origin_cutout where it
        # starts in the cutout: their difference is the image index of cutout pixel (0, 0).
        x0 = int(cut.origin_original[0] - cut.origin_cutout[0])
        y0 = int(cut.origin_original[1] - cut.origin_cutout[1])
        ny, nx = cut.shape
        return self.cutout_pixels(x0, y0, x0 + nx, y0 + ny)

    def cutout_region(self, path: str | Path) -> "Cutout":
        """Cut the bounding box of the first shape with an area in a DS9/CRTF/FITS region file."""
        region, notes = read_region_shape(path, crtf_frame(self.wcs))
        _, (x0, y0, x1, y1) = region_on_image(region, self.wcs, path)
        cut = self.cutout_pixels(x0, y0, x1, y1)
        cut.warnings.extend(notes)
        return cut


MAX_CUTOUT_PX = 8192      # a cutout side; larger ones are refused before anything is allocated


class _Plane:
    """A lazy 2-D plane of an N-D FITS section or array: indexing reads only what it asks for."""

    def __init__(self, source, lead: tuple[int, ...]):
        self.source = source
        self.lead = lead

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.source.shape[len(self.lead):])

    @property
    def dtype(self):
        return self.source.dtype

    @property
    def ndim(self) -> int:
        return 2

    def __getitem__(self, item):
        item = item if isinstance(item, tuple) else (item,)
        return self.source[self.lead + item]

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self[:, :])
        return out.astype(dtype) if dtype is not None else out


_SKY_UNITS = re.compile(r"\d\s*(deg|arcsec|arcmin|rad)\b|\d+[:h]\d+[:m]\d", re.IGNORECASE)


def read_region_shape(path: str | Path, crtf_frame: str = "J2000"):
    """The first shape with an area (box, circle, ellipse, polygon …) of a DS9, CRTF or FITS
    region file, and notes on what else the file held (more shapes, points, text).

    A CRTF file whose shapes are in sky units but that names no ``coord=`` is read in CASA's
    default, the image's own frame (``crtf_frame``; the reader of ``regions`` would take the
    numbers as pixels)."""
    from regions import Regions

    path = str(path)
    if not Path(path).is_file():
        raise RadioLlavaError(f"{path}: no such region file")
    fmt = {".reg": "ds9", ".crtf": "crtf", ".fits": "fits", ".fit": "fits"}.get(Path(path).suffix.lower())
    notes = []
    try:
        with warnings.catch_warnings(record=True) as skipped:     # "unable to parse line …": counted below
            warnings.simplefilter("always")
            text = Path(path).read_text(errors="replace") if fmt == "crtf" else ""
            if fmt == "crtf" and "coord" not in text.lower() and _SKY_UNITS.search(text):
                lines = text.splitlines()
                head = 1 if lines and lines[0].lstrip().startswith("#CRTF") else 0
                text = "\n".join(lines[:head] + [f"global coord={crtf_frame}"] + lines[head:]) + "\n"
                regs = Regions.parse(text, format="crtf")
                notes.append(f"{path} names no coord=; its sky coordinates are read in the image's frame "
                             f"({crtf_frame})")
            else:
                regs = Regions.read(path, format=fmt) if fmt else Regions.read(path)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise RadioLlavaError(f"{path}: cannot read regions ({first}); "
                              "give a DS9 (.reg), CRTF (.crtf) or FITS region file") from None
    unparsed = [w for w in skipped if "unable to parse" in str(w.message) or "skipping" in str(w.message)]
    if len(regs) == 0:
        raise RadioLlavaError(f"{path} contains no region" + (f" ({len(unparsed)} lines could not be read as "
                                                               "DS9/CRTF shapes)" if unparsed else ""))
    kinds = [type(r).__name__.replace("SkyRegion", "").replace("PixelRegion", "").lower() for r in regs]
    shaped = [r for r, k in zip(regs, kinds) if k not in ("point", "text")]
    if not shaped:
        raise RadioLlavaError(f"{path} holds only {', '.join(sorted(set(kinds)))} regions, which have no area; "
                              "draw a box, circle, ellipse or polygon to ask about")
    if unparsed:
        notes.append(f"{path}: {len(unparsed)} lines could not be read as shapes and were skipped")
    if len(regs) > 1:
        first = next(k for k in kinds if k not in ("point", "text"))
        notes.append(f"{path} holds {len(regs)} regions ({', '.join(kinds)}); using the first with an area ({first})")
    return shaped[0], notes


def read_first_region(path: str | Path, wcs=None):
    """The first shape with an area of a DS9, CRTF or FITS region file (see ``read_region_shape``)."""
    return read_region_shape(path, crtf_frame(wcs) if wcs is not None else "J2000")[0]


def region_on_image(region, wcs, path) -> tuple:
    """A region (sky or pixel) → (pixel region, its integer bounding box) on an image; a sky
    region the projection cannot place there (e.g. on the far side of the sky) is one error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pixel = region.to_pixel(wcs) if hasattr(region, "to_pixel") else region
            bb = pixel.bounding_box
    except (ValueError, np.linalg.LinAlgError, OverflowError) as exc:
        raise RadioLlavaError(f"{path}: its region cannot be placed on this image ({exc}); "
                              "is it drawn on another part of the sky?") from None
    return pixel, (bb.ixmin, bb.iymin, bb.ixmax, bb.iymax)


def crtf_frame(wcs) -> str:
    """The CRTF name of a celestial WCS's frame: J2000, ICRS, B1950 or GALACTIC."""
    ctype = str(wcs.wcs.ctype[0]).upper()
    if ctype.startswith("GLON"):
        return "GALACTIC"
    radesys = str(getattr(wcs.wcs, "radesys", "") or "").upper()
    if radesys == "ICRS":
        return "ICRS"
    if radesys == "FK4" or float(getattr(wcs.wcs, "equinox", 2000) or 2000) == 1950:
        return "B1950"
    return "J2000"


@dataclass
class Cutout:
    """Pixels cut from a RadioImage, and where they sit in it.

    ``x0, y0``: the mosaic pixel index of the cutout's pixel (0, 0); negative when the cutout
    reaches past the image's lower-left edge. ``padded``: part of it lies off the image (NaN there).
    """

    data: np.ndarray
    x0: int
    y0: int
    image: RadioImage
    padded: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    @property
    def transform(self):
        """Cutout pixels ⇄ mosaic pixels ⇄ sky (a Transform whose picture is the cutout itself)."""
        from .transform import Transform

        ny, nx = self.shape
        return Transform.identity(nx, ny, self.x0, self.y0, wcs=self.image.wcs)

    @property
    def wcs(self):
        """The cutout's own celestial WCS: the mosaic's with the reference pixel (and SIP's) moved
        to the cutout's origin and the cutout's shape, as astropy's ``WCS.slice`` does (which
        cannot start before the image's first pixel, as a padded cutout does)."""
        from astropy.wcs import Sip

        shift = np.array([self.x0, self.y0], float)
        w = self.image.wcs.deepcopy()
        w.wcs.crpix = w.wcs.crpix - shift
        if w.sip is not None:
            w.sip = Sip(w.sip.a, w.sip.b, w.sip.ap, w.sip.bp, w.sip.crpix - shift)
        w.array_shape = self.shape
        return w

    @property
    def blank_fraction(self) -> float:
        return float(np.mean(~np.isfinite(self.data)))

    @property
    def center_sky(self):
        ny, nx = self.shape
        return self.transform.cutout_to_sky((nx - 1) / 2, (ny - 1) / 2)

    @property
    def size_arcsec(self) -> tuple[float, float]:
        sx, sy = self.image.pixel_scale_arcsec
        ny, nx = self.shape
        return nx * sx, ny * sy


def parse_size(text: str):
    """'2arcmin', '120 arcsec', '0.1deg', "3'", '45"' → Quantity (angle). A bare number is refused."""
    import astropy.units as u

    s = str(text).strip().replace("″", '"').replace("′", "'")
    if s.endswith('"'):
        s = s[:-1] + "arcsec"
    elif s.endswith("'"):
        s = s[:-1] + "arcmin"
    try:
        q = u.Quantity(s)
    except (TypeError, ValueError):
        raise RadioLlavaError(f"size {text!r} is not an angle; write e.g. 2arcmin, 90arcsec or 0.05deg") from None
    if q.unit == u.dimensionless_unscaled:
        raise RadioLlavaError(f"size {text!r} has no unit; write e.g. {text}arcsec or {text}arcmin")
    if not q.unit.is_equivalent(u.deg):
        raise RadioLlavaError(f"size {text!r} is not an angle; write e.g. 2arcmin")
    if not np.isfinite(q.value) or q.value <= 0:
        raise RadioLlavaError(f"size {text!r} must be positive")
    return q.to(u.arcsec)


def parse_center(text: str, frame: str = "icrs"):
    """'205.1 55.2' (degrees), '13:40:24 +55:12:00' or '13h40m24s +55d12m' → SkyCoord."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    s = str(text).strip().replace(",", " ")
    sexagesimal = any(c in s for c in ":hms") and frame not in ("galactic",)
    try:
        if sexagesimal:
            return SkyCoord(s, unit=(u.hourangle, u.deg), frame=frame)
        return SkyCoord(*[float(v) for v in s.split()], unit=u.deg, frame=frame)
    except Exception:
        raise RadioLlavaError(f"centre {text!r} is not a sky position; write \"RA DEC\" in degrees "
                              "(e.g. \"205.12 55.3\") or sexagesimal (\"13:40:29 +55:18:00\")") from None
