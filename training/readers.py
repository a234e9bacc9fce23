"""Readers of annotated radio data: each input kind → ``Record`` objects (or ``Problem`` for a bad record).

A ``Record`` says which image (a FITS file, a tile of a mosaic, or a PNG/JPG picture) and what is
known about it: radioimg-multilabel labels, the B5 class, the rgz-smorph class, the FR class,
border/artefact/radio-galaxy flags and annotated sources with boxes (see ``datasets`` for the
kinds). ``None`` means unknown: the builder then asks no question about it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.labels import (BOX_CLASSES, CAESAR_CLASSES, FR, MULTILABELS, PECULIARITY,  # noqa: F401
                                         RGCAT_CLASSES, SIMULATED_BOX_CLASSES, SMORPH, Truth, canonical_label)
from glue_radiollava.core.references import read_json, reference_items, resolve_listed, simulator_images
from glue_radiollava.core.transform import radec_to_pixel, sky_to_pixel

KINDS = ("sim", "labels", "yolo", "rgcat", "mosaic")
SCHEMES = {
    "multilabel": MULTILABELS,
    "smorph": SMORPH,
    "fr": FR,
    "peculiarity": PECULIARITY,
}
IMAGE_SUFFIXES = (".fits", ".fit", ".fts", ".png", ".jpg", ".jpeg")
BOX_TOLERANCE = 0.01     # how far (normalised) a box may overhang its image before it is an error


class RecordError(Exception):
    """A problem with one record (its message names the record)."""


@dataclass
class Source:
    """One annotated object: its box classes and its box, in pixel edges of the record's image
    (mosaic pixels for tiles; pixel i spans i-0.5..i+0.5) or, with ``normalised``, as
    ``[x_center, y_center, width, height]`` of the stored image (y from its top = FITS row 0)."""

    classes: tuple[str, ...]
    box: tuple[float, float, float, float]
    normalised: bool = False


@dataclass
class Record(Truth):
    """One image to turn into a conversation, and what is known about it (``Truth``; None: unknown)."""

    id: str
    image: Path
    hdu: int | None = None
    region: tuple[int, int, int, int] | None = None     # a mosaic tile: x0, y0, x1, y1 (exclusive)
    sources: list[Source] = field(default_factory=list)
    box_classes: frozenset = frozenset()
    groups: tuple[str, ...] = ()


@dataclass
class Problem:
    """A record that could not be read (from a reader)."""

    id: str
    message: str


@dataclass
class Note:
    """Something the report should say that is not a bad record (e.g. sources off the image)."""

    message: str


_canon = canonical_label


def safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", str(text)).strip("_") or "image"


# ------------------------------------------------------------------ readers
def read_sim(path: Path, **_):
    """Records from a simulator folder (or its objects.json), read by ``core.references``."""
    meta, images = simulator_images(path)
    if meta.get("simulator", {}).get("config", {}).get("mosaic"):
        raise RadioLlavaError(f"{path} describes mosaics: build from a mosaic and its catalogue, "
                              "e.g. --from mosaic mosaic_000000.fits --catalogue mosaic_000000.ecsv")
    complete = frozenset(SIMULATED_BOX_CLASSES + ("RADIO-GALAXY",))
    for img in images:
        if img.problem:
            yield Problem(img.sname, img.problem)
            continue
        yield Record(img.sname, img.image, labels=tuple(_canon(v) for v in img.labels),
                     peculiarity=img.peculiarity, smorph=img.smorph, fr_class=img.fr_class,
                     sources=[Source(classes, box) for classes, box in img.objects], box_classes=complete,
                     groups=(img.filepath,))


def detect_scheme(labels: list[str]) -> str:
    """The coarse-label scheme that holds most of ``labels``."""
    counts = {name: sum(lab in vocab for lab in labels) for name, vocab in SCHEMES.items()}
    best = max(counts, key=counts.get)
    if counts[best] == 0:
        shown = ", ".join(sorted(set(labels))[:6])
        raise RadioLlavaError(f"labels {shown} belong to no known scheme ({', '.join(SCHEMES)}); "
                              "check the file or give --scheme")
    return best


def read_labels(path: Path, scheme: str = "auto", **_):
    """Records from the reference coarse-label JSON, read by ``core.references``."""
    items = reference_items(path)

    def labels_of(item):
        lab = item.label
        return [lab] if isinstance(lab, str) else list(lab) if isinstance(lab, list) else []

    if scheme == "auto":
        scheme = detect_scheme([_canon(v) for item in items for v in labels_of(item)])
    if scheme not in SCHEMES:
        raise RadioLlavaError(f"unknown scheme {scheme!r}; use auto or one of {', '.join(SCHEMES)}")
    vocab = SCHEMES[scheme]
    for item in items:
        name = item.sname
        if item.problem:
            yield Problem(name, item.problem)
            continue
        raw = labels_of(item)
        labels = [_canon(v) for v in raw]
        bad = [r for r, v in zip(raw, labels) if v not in vocab]
        if bad or not labels:
            shown = ", ".join(map(repr, bad)) or "(none)"
            yield Problem(name, f"label {shown} is outside the {scheme} scheme ({', '.join(vocab)})")
            continue
        rec = Record(name, item.image, groups=(str(item.image),))
        if scheme == "multilabel":
            rec.labels = tuple(v for v in MULTILABELS if v in labels)
        elif len(set(labels)) != 1:
            yield Problem(name, f"{scheme} takes one label per image, got {', '.join(labels)}")
            continue
        elif scheme == "smorph":
            rec.smorph = labels[0]
        elif scheme == "fr":
            rec.fr_class, rec.radio_galaxy = labels[0], True
        else:
            rec.peculiarity = labels[0]
        yield rec


def read_yolo(path: Path, classes: str | None = None, **_):
    """Records from a YOLO folder (images/ + labels/, or both side by side)."""
    root = Path(path)
    if not root.is_dir():
        raise RadioLlavaError(f"{root}: not a folder; give a YOLO folder with images/ and labels/")
    img_dir = root / "images" if (root / "images").is_dir() else root
    lab_dir = root / "labels" if (root / "labels").is_dir() else root
    if classes:
        names = [_canon(c) for c in classes.split(",")]
    elif (root / "classes.txt").is_file():
        names = [_canon(c) for c in (root / "classes.txt").read_text().split("\n") if c.strip()]
    else:
        names = list(CAESAR_CLASSES)
    unknown = [n for n in names if n not in BOX_CLASSES]
    if unknown:
        raise RadioLlavaError(f"YOLO class names {', '.join(unknown)} are not box classes "
                              f"({', '.join(BOX_CLASSES)})")
    images = {p.stem: p for p in sorted(img_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    labels = {p.stem: p for p in sorted(lab_dir.glob("*.txt")) if p.name != "classes.txt"}
    if not images and not labels:
        raise RadioLlavaError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) and no label files")
    complete = frozenset(names)
    for stem in sorted(set(images) | set(labels)):
        if stem not in images:
            yield Problem(stem, f"missing image file for {labels[stem]}")
            continue
        sources, problem = [], None
        if stem in labels:
            for n, line in enumerate(labels[stem].read_text().splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                try:
                    cid, values = int(float(parts[0])), [float(v) for v in parts[1:5]]
                    if len(values) != 4:
                        raise ValueError
                except ValueError:
                    problem = f"{labels[stem].name} line {n}: expected 'class x_center y_center width height'"
                    break
                if not 0 <= cid < len(names):
                    problem = (f"{labels[stem].name} line {n}: class {cid} is outside the known "
                               f"classes 0–{len(names) - 1}")
                    break
                sources.append(Source((names[cid],), tuple(values), normalised=True))
        if problem:
            yield Problem(stem, problem)
            continue
        art = any("SPURIOUS" in s.classes for s in sources) if "SPURIOUS" in complete else None
        yield Record(stem, images[stem], sources=sources, box_classes=complete, artefact=art,
                     groups=(str(images[stem]),))


def read_rgcat(path: Path, **_):
    """Records from an EMU RG-CAT style JSON list."""
    path = Path(path)
    items = read_json(path)
    if not isinstance(items, list):
        raise RadioLlavaError(f"{path}: expected a list of {{\"filename\", \"objs\"}} records")
    with_caesar = any("label_caesar" in o for it in items if isinstance(it, dict)
                      for o in (it.get("objs") or []) if isinstance(o, dict))
    complete = frozenset(RGCAT_CLASSES + ("RADIO-GALAXY",) + (CAESAR_CLASSES if with_caesar else ()))
    for i, item in enumerate(items):
        name = Path(str(item.get("filename", f"#{i}"))).stem if isinstance(item, dict) else f"#{i}"
        if not isinstance(item, dict) or "filename" not in item:
            yield Problem(name, "no filename")
            continue
        sources, problem = [], None
        for j, obj in enumerate(item.get("objs") or []):
            try:
                label = _canon(obj["label"])
                if label not in RGCAT_CLASSES:
                    raise RecordError(f"object {j}: label {obj['label']!r} is outside the RG-CAT scheme "
                                      f"({', '.join(RGCAT_CLASSES)})")
                sources.append(Source((label, "RADIO-GALAXY"), _four(obj["bbox_norm"]), normalised=True))
                if "label_caesar" in obj:
                    cl = _canon(obj["label_caesar"])
                    cl = "SPURIOUS" if cl == "ARTIFACT" else cl
                    if cl not in CAESAR_CLASSES:
                        raise RecordError(f"object {j}: label_caesar {obj['label_caesar']!r} is outside "
                                          f"{', '.join(CAESAR_CLASSES)}")
                    sources.append(Source((cl,), _four(obj.get("bbox_norm_caesar", obj["bbox_norm"])),
                                          normalised=True))
            except (KeyError, TypeError, ValueError) as exc:
                problem = f"object {j}: {exc!r}"
                break
            except RecordError as exc:
                problem = str(exc)
                break
        if problem:
            yield Problem(name, problem)
            continue
        rg = {s.classes[0] for s in sources if s.classes[0] in RGCAT_CLASSES}
        caesar = {s.classes[0] for s in sources if s.classes[0] in CAESAR_CLASSES}
        frs = [s.classes[0] for s in sources if s.classes[0] in ("FR-I", "FR-II", "FR-X")]
        extended = rg & {"FR-I", "FR-II", "FR-X", "R"} or caesar & {"EXTENDED", "EXTENDED-MULTISLAND"}
        pec = "PECULIAR" if "PEC" in rg else "COMPLEX" if extended else "ORDINARY"
        image = resolve_listed(path.parent, str(item["filename"]))
        yield Record(name, image, sources=sources, box_classes=complete, radio_galaxy=bool(rg - {"C"}),
                     artefact=("SPURIOUS" in caesar) if with_caesar else None, peculiarity=pec,
                     fr_class=frs[0] if len(frs) == 1 and frs[0] != "FR-X" else None, groups=(str(image),))


def _four(values) -> tuple[float, float, float, float]:
    v = [float(x) for x in values]
    if len(v) != 4:
        raise ValueError(f"a box needs 4 numbers, got {len(v)}")
    return tuple(v)


# ------------------------------------------------------------------ mosaic + catalogue
RA_NAMES = ("ra", "ra_deg", "raj2000", "_raj2000", "ra_j2000", "alpha_j2000", "ra_icrs", "radeg")
DEC_NAMES = ("dec", "dec_deg", "dej2000", "_dej2000", "decj2000", "dec_j2000", "delta_j2000", "de_icrs",
             "dedeg", "decdeg")


def _column(table, names):
    lower = {c.lower(): c for c in table.colnames}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def _values(table, name, unit: str | None = None) -> np.ndarray:
    col = table[name]
    if unit and getattr(col, "unit", None) is not None:
        return np.asarray(col.quantity.to_value(unit), float)
    return np.asarray(col, float)


def read_catalogue(path: Path):
    """An astropy Table from CSV/ECSV/FITS/VOTable; RadioLlavaError when it has no RA/Dec."""
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise RadioLlavaError(f"catalogue {path}: no such file")
    fmt = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv"}.get(path.suffix.lower())
    try:
        table = Table.read(path, format=fmt) if fmt else Table.read(path)
    except Exception as exc:  # astropy raises many kinds for unreadable tables
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise RadioLlavaError(f"catalogue {path}: cannot read it ({first})") from None
    if _column(table, RA_NAMES) is None or _column(table, DEC_NAMES) is None:
        raise RadioLlavaError(f"catalogue {path} has no RA/Dec columns (looked for RA/DEC, RAJ2000/DEJ2000, "
                              f"ra_deg/dec_deg …); its columns are {', '.join(table.colnames[:12])}")
    return table


def catalogue_boxes(table, image, box_scale: float = 1.5, extended_beams: float = 2.0):
    """Pixel-edge boxes (N×4), centres (N×2), classes and row names of catalogue sources on ``image``.

    Boxes come from box_ra/box_dec/box_width/box_height columns when present, else from the
    Maj/Min/PA ellipse (FWHM, arcsec): its 3σ contour when Peak_flux and Isl_rms are given, else
    ``box_scale`` × the FWHM; sources without sizes get a beam-sized box. Without a class column a
    source is EXTENDED when its deconvolved major axis (DC_Maj, or √(Maj² − beam²)) exceeds
    ``extended_beams`` beams, else COMPACT.
    """
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    ra = _values(table, _column(table, RA_NAMES), "deg")
    dec = _values(table, _column(table, DEC_NAMES), "deg")
    n = len(ra)
    sx, sy = image.pixel_scale_arcsec
    beam = image.beam.major_arcsec if image.beam else 3 * sx
    centre = np.stack(radec_to_pixel(image.wcs, ra, dec), axis=1) if n else np.zeros((0, 2))
    wanted = ("box_ra", "box_dec", "box_width", "box_height", "maj", "min", "pa", "peak_flux", "isl_rms",
              "dc_maj", "class", "radio_galaxy", "source_name")
    cols = {c: _column(table, (c,)) for c in wanted}
    maj = _values(table, cols["maj"], "arcsec") if cols["maj"] else np.full(n, beam)
    if all(cols[c] for c in ("box_ra", "box_dec", "box_width", "box_height")):
        bc = np.stack(radec_to_pixel(image.wcs, _values(table, cols["box_ra"], "deg"),
                                     _values(table, cols["box_dec"], "deg")), axis=1)
        hw = _values(table, cols["box_width"], "arcsec") / 2 / sx
        hh = _values(table, cols["box_height"], "arcsec") / 2 / sy
        boxes = np.stack([bc[:, 0] - hw, bc[:, 1] - hh, bc[:, 0] + hw, bc[:, 1] + hh], axis=1)
    else:
        mnr = _values(table, cols["min"], "arcsec") if cols["min"] else maj.copy()
        pa = _values(table, cols["pa"], "deg") if cols["pa"] else np.zeros(n)
        if cols["peak_flux"] and cols["isl_rms"]:
            ratio = _values(table, cols["peak_flux"]) / (3 * _values(table, cols["isl_rms"]))
            k = np.sqrt(2 * np.log(np.clip(ratio, 1.0, None))) / (2 * math.sqrt(2 * math.log(2)))
            scale = np.maximum(k, 0.5)            # semi-axis = scale × FWHM
        else:
            scale = np.full(n, box_scale / 2)
        a, b = np.nan_to_num(maj * scale), np.nan_to_num(mnr * scale)
        t = np.linspace(0, 2 * math.pi, 24, endpoint=False)[None, :]
        th = np.radians(np.nan_to_num(pa))[:, None]
        east = a[:, None] * np.cos(t) * np.sin(th) + b[:, None] * np.sin(t) * np.cos(th)
        north = a[:, None] * np.cos(t) * np.cos(th) - b[:, None] * np.sin(t) * np.sin(th)
        c0 = SkyCoord(np.repeat(ra, 24) * u.deg, np.repeat(dec, 24) * u.deg)
        pts = c0.spherical_offsets_by(east.ravel() * u.arcsec, north.ravel() * u.arcsec)
        px, py = (np.asarray(v).reshape(n, 24) for v in sky_to_pixel(image.wcs, pts))
        boxes = np.stack([px.min(1), py.min(1), px.max(1), py.max(1)], axis=1) if n else np.zeros((0, 4))
    names = ([str(v) for v in table[cols["source_name"]]] if cols["source_name"] else
             [f"row {i + 1}" for i in range(n)])
    classes: list = []
    for i in range(n):
        if cols["class"]:
            cls = (_canon(table[cols["class"]][i]),)
        else:
            if cols["dc_maj"]:
                dc = float(_values(table, cols["dc_maj"], "arcsec")[i])
            else:
                dc = math.sqrt(max(float(maj[i]) ** 2 - beam ** 2, 0.0)) if cols["maj"] else 0.0
            resolved = dc > extended_beams * beam
            cls = ("EXTENDED" if resolved else "COMPACT",)
        rg = str(table[cols["radio_galaxy"]][i]).strip().lower() if cols["radio_galaxy"] else ""
        if rg in ("true", "1", "yes"):
            cls = cls + ("RADIO-GALAXY",)
        classes.append(cls)
    return boxes, centre, classes, names, cols


def read_mosaic(path: Path, catalogue: str | None = None, cutout_size: int = 128, overlap: int = 0,
                box_classes: str | None = None, box_scale: float = 1.5, extended_beams: float = 2.0,
                hdu=None, **_):
    """Tiles of a FITS mosaic with the catalogue's sources as boxes."""
    from glue_radiollava.core.image import RadioImage

    if not catalogue:
        raise RadioLlavaError("--from mosaic needs --catalogue FILE (a table with RA/Dec and sizes)")
    if not 16 <= cutout_size:
        raise RadioLlavaError(f"--cutout-size {cutout_size}: use at least 16 pixels")
    if not 0 <= overlap < cutout_size:
        raise RadioLlavaError(f"--overlap {overlap}: use 0 to {cutout_size - 1} pixels")
    image = RadioImage.open(path, hdu=hdu)
    table = read_catalogue(Path(catalogue))
    boxes, centre, classes, names, cols = catalogue_boxes(table, image, box_scale, extended_beams)
    ny, nx = image.shape
    bad = [i for i, c in enumerate(classes) if any(k not in BOX_CLASSES for k in c)]
    for i in bad:
        yield Problem(f"{Path(catalogue).name} {names[i]}",
                      f"class {'/'.join(classes[i])} is outside the known box classes "
                      f"({', '.join(BOX_CLASSES)})")
    ok = np.array([i not in set(bad) for i in range(len(classes))], bool)
    inside = ok & np.all(np.isfinite(boxes), axis=1) & np.all(np.isfinite(centre), axis=1)
    inside &= (boxes[:, 2] > -0.5) & (boxes[:, 0] < nx - 0.5) & (boxes[:, 3] > -0.5) & (boxes[:, 1] < ny - 0.5)
    covered = np.zeros(len(classes), bool)
    if box_classes:
        complete = frozenset(_canon(c) for c in box_classes.split(","))
    elif cols["class"]:
        complete = frozenset(k for i in np.flatnonzero(ok) for k in classes[i] if k != "RADIO-GALAXY")
        complete |= {"RADIO-GALAXY"} if cols["radio_galaxy"] else set()
    else:
        complete = frozenset(("COMPACT", "EXTENDED"))
    step = cutout_size - overlap
    stem = safe_id(Path(path).stem)
    for ty in range(0, ny - cutout_size + 1, step):
        for tx in range(0, nx - cutout_size + 1, step):
            e0x, e0y, e1x, e1y = tx - 0.5, ty - 0.5, tx + cutout_size - 0.5, ty + cutout_size - 0.5
            ix0, iy0 = np.maximum(boxes[:, 0], e0x), np.maximum(boxes[:, 1], e0y)
            ix1, iy1 = np.minimum(boxes[:, 2], e1x), np.minimum(boxes[:, 3], e1y)
            inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
            area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-9)
            cx, cy = centre[:, 0], centre[:, 1]
            centred = (cx >= e0x) & (cx < e1x) & (cy >= e0y) & (cy < e1y)
            take = inside & (inter > 0) & (centred | (inter >= 0.5 * area))
            covered |= take
            sources = [Source(classes[i], (float(ix0[i]), float(iy0[i]), float(ix1[i]), float(iy1[i])))
                       for i in np.flatnonzero(take)]
            touch = inside & (inter > 0)
            bx = range(tx // step, (tx + cutout_size - 1) // step + 1)
            by = range(ty // step, (ty + cutout_size - 1) // step + 1)
            groups = tuple(f"{stem}:src:{names[i]}" for i in np.flatnonzero(touch)) + \
                tuple(f"{stem}:block:{i},{j}" for i in bx for j in by)
            rec = Record(f"{stem}_x{tx}_y{ty}", Path(path), hdu=image.hdu,
                         region=(tx, ty, tx + cutout_size, ty + cutout_size), sources=sources,
                         box_classes=complete, groups=groups)
            if "SPURIOUS" in complete:
                rec.artefact = any("SPURIOUS" in s.classes for s in sources)
            yield rec
    image.close()
    off = int(np.sum(ok & ~inside))
    if off:
        yield Note(f"{off} catalogue sources lie outside {Path(path).name} (not used)")
    missed = int(np.sum(inside & ~covered))
    if missed:
        yield Note(f"{missed} catalogue sources on the mosaic fall in no tile (the margin beyond the last "
                   f"full tile, or less than half of their box in any tile)")


READERS = {"sim": read_sim, "labels": read_labels, "yolo": read_yolo, "rgcat": read_rgcat,
           "mosaic": read_mosaic}
