"""Session transcripts: every question, answer, region and box (in sky coordinates) with provenance.

A transcript is JSON: ``{"format": "radiollava-transcript", "version": 1, "image": {...},
"entries": [Answer.to_dict(), ...]}``. Written atomically; reading validates it and returns the
entries with their boxes as SkyBox objects, ready to be put back on a mosaic.
"""

from __future__ import annotations

import json
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


def load_transcript(path: str | Path) -> tuple[dict, list[dict]]:
    """→ (image info, entries); each entry's ``boxes`` become SkyBox objects."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RadioLlavaError(f"{path}: not a readable transcript ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RadioLlavaError(f"{path}: not a radiollava transcript (no \"format\": \"{FORMAT}\")")
    if doc.get("version", 0) > VERSION:
        raise RadioLlavaError(f"{path}: transcript version {doc['version']} is newer than this "
                              f"glue-radiollava understands ({VERSION}); update the package")
    entries = []
    for i, entry in enumerate(doc.get("entries", [])):
        try:
            boxes = [SkyBox.from_dict(b) for b in entry.get("boxes", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise RadioLlavaError(f"{path}: entry {i} has a malformed box ({exc})") from None
        entries.append({**entry, "boxes": boxes})
    return doc.get("image", {}), entries
