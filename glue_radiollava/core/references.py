"""The labelled-data files both the dataset builder and the benchmarks read, read once, here.

- the reference JSON of radio-llava's benchmarks and coarse-label sets:
  ``{"data": [{"sname", "filepaths" (or "filepath"), "label", "cutout"?, "boxes"?}]}``;
- the simulator's ``objects.json``: ``{"images": [{"sname", "filepath", "labels", "objects": [...]}]}``.

Image paths resolve by one rule (``resolve_listed``), so one file points to the same images in
training and in the benchmarks. A record that cannot be read is returned as a ``problem`` naming
it; the caller decides whether to skip it (dataset build) or stop (a benchmark).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import RadioLlavaError


def read_json(path: str | Path):
    """A JSON file, or one error naming it."""
    path = Path(path)
    if not path.is_file():
        raise RadioLlavaError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RadioLlavaError(f"{path}: not valid JSON ({exc})") from None


def resolve_listed(base: Path, name: str) -> Path:
    """An image path as a listing file writes it: absolute as is; relative paths beside the listing
    (the simulator's and the dataset builder's own files); a relative path that is not there but
    exists from the working folder (the reference radio-llava JSONs list paths from their working
    folder) from there; otherwise beside the listing, so the error names where it was looked for."""
    p = Path(str(name)).expanduser()
    if p.is_absolute():
        return p
    beside = Path(base) / p
    return beside if beside.exists() or not p.exists() else p.resolve()


@dataclass(frozen=True)
class TruthBox:
    """A true object box: its class (upper case) and image pixel edges ``x0, y0, x1, y1``
    (pixel i spans i±0.5). The benchmarks' truth boxes are these."""

    label: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class ReferenceItem:
    """One record of a reference JSON (``problem`` set: it could not be read, the rest may be None)."""

    sname: str
    where: str                                   # "FILE record #i ('sname')", for messages
    image: Path | None = None
    label: object = None                         # a string or a list of strings, as written
    cutout: tuple[int, int, int, int] | None = None
    boxes: tuple[TruthBox, ...] | None = None   # None: the record lists no boxes
    problem: str | None = None


@dataclass(frozen=True)
class SimImage:
    """One image of a simulator ``objects.json`` (``problem`` set: it could not be read)."""

    sname: str
    where: str
    image: Path | None = None
    filepath: str = ""                           # as written in the file
    labels: tuple[str, ...] = ()
    peculiarity: str | None = None
    smorph: str | None = None
    fr_class: str | None = None
    objects: tuple[tuple[tuple[str, ...], tuple[float, float, float, float]], ...] = ()   # (classes, box)
    problem: str | None = None


def _truth_box(b) -> TruthBox:
    box = tuple(float(v) for v in b["pixel_box"])
    if len(box) != 4 or not (box[2] > box[0] and box[3] > box[1]):
        raise ValueError("bad box")
    return TruthBox(str(b["label"]).upper(), box)


def reference_items(path: str | Path) -> list[ReferenceItem]:
    """Every record of a reference JSON, in order; records that cannot be read carry ``problem``."""
    path = Path(path)
    doc = read_json(path)
    items = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise RadioLlavaError(f"{path}: expected the reference layout "
                              '{"data": [{"sname", "filepaths", "label"}]}')
    out = []
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict):
            out.append(ReferenceItem(f"#{i}", f"{path.name} record #{i}",
                                     problem="expected an object with sname, filepaths and label"))
            continue
        sname = str(item.get("sname", f"#{i}"))
        where = f"{path.name} record #{i} ({sname!r})"
        files = item.get("filepaths", item.get("filepath"))
        files = [files] if isinstance(files, str) else files
        if not files or not isinstance(files, list):
            out.append(ReferenceItem(sname, where, problem="no 'filepaths'; give the image file of each record"))
            continue
        if "label" not in item:
            out.append(ReferenceItem(sname, where, problem="no 'label'"))
            continue
        cutout = item.get("cutout")
        if cutout is not None:
            try:
                cutout = tuple(int(round(float(v))) for v in cutout)
                if len(cutout) != 4 or not (cutout[2] > cutout[0] and cutout[3] > cutout[1]):
                    raise ValueError
            except (TypeError, ValueError):
                out.append(ReferenceItem(sname, where, problem="'cutout' must be [x0, y0, x1, y1] with x1 > x0, "
                                                               "y1 > y0"))
                continue
        boxes = None
        if "boxes" in item:
            try:
                boxes = tuple(_truth_box(b) for b in item["boxes"] or [])
            except (KeyError, TypeError, ValueError):
                out.append(ReferenceItem(sname, where, problem="each box needs 'label' and 'pixel_box' "
                                                               "[x0, y0, x1, y1] with x1 > x0 and y1 > y0"))
                continue
        out.append(ReferenceItem(sname, where, resolve_listed(path.parent, files[0]), item["label"], cutout, boxes))
    return out


def simulator_images(path: str | Path) -> tuple[dict, list[SimImage]]:
    """A simulator folder's (or its ``objects.json``'s) header and images, in order; images that
    cannot be read carry ``problem``. An object that is a radio galaxy has both its class and
    RADIO-GALAXY."""
    path = Path(path)
    meta_file = path / "objects.json" if path.is_dir() else path
    doc = read_json(meta_file)
    images = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(images, list):
        raise RadioLlavaError(f"{meta_file}: not a simulator objects.json (no 'images' list)")
    out = []
    for i, img in enumerate(images, 1):
        sname = str(img.get("sname", f"#{i}")) if isinstance(img, dict) else f"#{i}"
        where = f"{meta_file.name} image #{i} ({sname!r})"
        try:
            objects = tuple((tuple([str(o["class"]).upper()] + (["RADIO-GALAXY"] if o.get("radio_galaxy") else [])),
                             tuple(float(v) for v in o["pixel_box"])) for o in img.get("objects", []))
            labels = tuple(str(v) for v in img["labels"])
            filepath = str(img["filepath"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            out.append(SimImage(sname, where, problem=f"incomplete simulator record ({exc!r})"))
            continue
        if any(len(box) != 4 for _, box in objects):
            out.append(SimImage(sname, where, problem="an object's 'pixel_box' is not [x0, y0, x1, y1]"))
            continue
        out.append(SimImage(sname, where, resolve_listed(meta_file.parent, filepath), filepath, labels,
                            img.get("peculiarity"), img.get("smorph"), img.get("fr_class"), objects))
    return doc, out
