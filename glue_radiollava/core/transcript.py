"""Session transcripts: every question, answer, region and box (in sky coordinates) with provenance.

A transcript is JSON: ``{"format": "radiollava-transcript", "version": 1, "image": {...},
"entries": [Answer.to_dict(), ...]}``. Written atomically; reading validates it and returns the
entries with their boxes as SkyBox objects, ready to be put back on a mosaic.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .errors import RadioLlavaError
from .files import atomic_write_text
from .skyregions import SkyBox

FORMAT = "radiollava-transcript"
VERSION = 1


def save_transcript(path: str | Path, entries: list[dict], image: dict | None = None) -> Path:
    doc = {"format": FORMAT, "version": VERSION, "image": image or {}, "entries": entries}
    text = json.dumps(doc, indent=1, default=str)
    return atomic_write_text(path, text)


def _box(path: Path, i: int, j: int, d) -> SkyBox:
    """One saved box, checked: finite numbers, a sky position, a positive size."""
    where = f"{path}: entry {i}, box {j}"
    if not isinstance(d, dict):
        raise RadioLlavaError(f"{where} is not an object with ra, dec, pixel_box …")
    try:
        box = SkyBox.from_dict(d)
    except KeyError as exc:
        raise RadioLlavaError(f"{where} lacks {exc}") from None
    except (TypeError, ValueError) as exc:
        raise RadioLlavaError(f"{where} is malformed ({exc})") from None
    numbers = [box.ra, box.dec, box.width_arcsec, box.height_arcsec, *box.pixel_box, *box.picture_box]
    if len(box.pixel_box) != 4 or not all(math.isfinite(float(v)) for v in numbers):
        raise RadioLlavaError(f"{where} has a missing or non-finite coordinate")
    if not -90 <= box.dec <= 90 or box.width_arcsec <= 0 or box.height_arcsec <= 0:
        raise RadioLlavaError(f"{where}: latitude {box.dec} or size {box.width_arcsec}\" x "
                              f"{box.height_arcsec}\" is impossible")
    return box


def load_transcript(path: str | Path) -> tuple[dict, list[dict]]:
    """→ (image info, entries); each entry's ``boxes`` become SkyBox objects. The whole file is
    checked first: a damaged transcript is one error, never half loaded."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RadioLlavaError(f"{path}: not a readable transcript ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RadioLlavaError(f"{path}: not a radiollava transcript (no \"format\": \"{FORMAT}\")")
    version = doc.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise RadioLlavaError(f"{path}: \"version\" must be a whole number, not {version!r}")
    if version > VERSION:
        raise RadioLlavaError(f"{path}: transcript version {version} is newer than this "
                              f"glue-radiollava understands ({VERSION}); update the package")
    items, image = doc.get("entries", []), doc.get("image", {})
    if not isinstance(items, list) or not isinstance(image, dict):
        raise RadioLlavaError(f"{path}: \"entries\" must be a list and \"image\" an object")
    entries = []
    for i, entry in enumerate(items):
        if not isinstance(entry, dict) or not isinstance(entry.get("boxes", []), list):
            raise RadioLlavaError(f"{path}: entry {i} must be an object whose \"boxes\" is a list")
        boxes = [_box(path, i, j, b) for j, b in enumerate(entry.get("boxes", []))]
        entries.append({**entry, "boxes": boxes})
    return image, entries
