"""Dataset builders: annotated radio images → LLaVA conversation JSON and rendered PNG pictures.

Input kinds (``radiollava dataset build --from KIND INPUT``):

- ``sim``: a simulator output folder (``objects.json``): every label, box and count is known.
- ``labels``: the reference coarse-label JSON ``{"data": [{"sname", "filepaths", "label"}]}`` in one
  scheme: radioimg-multilabel (a list of labels), rgz-smorph (1C-1P …), MiraBest (FR-I/FR-II) or
  the B5 peculiarity classes; ``--scheme auto`` picks the scheme that holds the labels.
- ``yolo``: a YOLO folder, ``images/NAME.{fits,png,jpg}`` + ``labels/NAME.txt`` with lines
  ``class x_center y_center width height`` (normalised, y from the image's top = FITS row 0);
  classes 0 SPURIOUS, 1 COMPACT, 2 EXTENDED, 3 EXTENDED-MULTISLAND, 4 FLAGGED unless ``classes.txt``
  or ``--classes`` says otherwise.
- ``rgcat``: EMU RG-CAT JSON ``[{"filename", "objs": [{"label", "bbox_norm", "label_caesar",
  "bbox_norm_caesar"}]}]``; ``bbox_norm`` is ``[x_center, y_center, width, height]`` normalised.
- ``mosaic``: a FITS mosaic and a source catalogue (``--catalogue``: CSV/ECSV/FITS with RA/DEC and
  Maj/Min/PA, or box_ra/box_dec/box_width/box_height columns), cut into tiles.

Every picture is rendered by the core (``render`` / ``render_array`` with the chosen profile) and
every box goes through the picture's ``Transform`` and ``format_yolo_boxes``, so the answers are
in the exact convention the assistant parses. Output: ``OUT.json`` (or ``OUT_train.json`` … with
``--split``), pictures in ``OUT_images/``, and ``OUT.meta.json`` (profile, sources, splits, report).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.files import atomic_write, atomic_write_text, check_outputs
from glue_radiollava.core.parsing import PictureBox
from glue_radiollava.core.transform import Transform

from .qa import ImageFacts, Turn, augment_turns, default_turns, to_llava
from .readers import BOX_TOLERANCE, KINDS, READERS, Note, Problem, Record, RecordError, safe_id

# ------------------------------------------------------------------ pictures
class _Pixels:
    """Reads the pixels of records; keeps the last few FITS files open (a mosaic gives many tiles)."""

    def __init__(self, profile, keep_open: int = 4):
        self.profile = profile
        self.keep_open = keep_open
        self.images: dict = {}

    def close(self):
        for img in self.images.values():
            if hasattr(img, "close"):
                img.close()
        self.images.clear()

    def load(self, rec: Record):
        """(data array, x0, y0, wcs or None, angular width, angular height) of the record's pixels."""
        path = Path(rec.image)
        if not path.is_file():
            raise RecordError(f"missing image file {path}")
        if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            from PIL import Image

            try:
                with Image.open(path) as im:
                    data = np.asarray(im.convert("L"), dtype=np.float32)
            except OSError as exc:
                raise RecordError(f"{path}: unreadable picture ({exc})") from None
            return data, 0, 0, None, None, None
        key = (str(path), rec.hdu)
        if key in self.images:
            img = self.images.pop(key)              # re-inserted below: most recently used last
        else:
            img = self._open_fits(path, rec.hdu)
            while len(self.images) >= self.keep_open:
                old = self.images.pop(next(iter(self.images)))
                if hasattr(old, "close"):
                    old.close()
        self.images[key] = img
        if isinstance(img, np.ndarray):
            return img, 0, 0, None, None, None
        ny, nx = img.shape
        x0, y0, x1, y1 = rec.region or (0, 0, nx, ny)
        try:
            cut = img.cutout_pixels(x0, y0, x1, y1)
        except RadioLlavaError as exc:
            raise RecordError(str(exc)) from None
        w, h = cut.size_arcsec
        return cut.data, x0, y0, img.wcs, w, h

    @staticmethod
    def _open_fits(path: Path, hdu):
        from glue_radiollava.core.image import RadioImage

        try:
            return RadioImage.open(path, hdu=hdu)
        except RadioLlavaError as exc:
            if "celestial WCS" not in str(exc):
                raise RecordError(str(exc)) from None
        from astropy.io import fits  # no sky coordinates: plain pixels are still a picture

        with fits.open(path) as hdul:
            arrays = [h.data for h in hdul
                      if h.is_image and h.data is not None and np.squeeze(h.data).ndim == 2]
        if not arrays:
            raise RecordError(f"{path}: no 2-D image")
        return np.squeeze(arrays[0]).astype(np.float32)



SKIP_REASONS = (  # phrase in a problem message → the reason it is counted under
    ("missing image file", "missing image file"), ("outside its image", "box outside its image"),
    ("is outside the", "label outside the scheme"), ("not a valid", "invalid box"),
    ("zero or negative size", "invalid box"), ("no filepaths", "no image named"), ("no filename", "no image named"),
    ("one label per image", "several labels"), ("incomplete", "incomplete record"),
    ("unreadable", "unreadable file"), ("is truncated", "unreadable file"), ("no 2-D image", "unreadable file"),
    ("blank", "blank image"),
    ("expected 'class", "bad label line"), ("object ", "bad object"),
)
MIN_BOX = 0.01    # normalised: smaller boxes would round to a zero size in the 2-decimal answers


def picture_boxes(rec: Record, transform, shape) -> dict[str, list[PictureBox]]:
    """The record's sources as normalised picture boxes per class (through the picture's Transform).

    Boxes smaller than ``MIN_BOX`` of the picture grow to it around their centre (a 2-decimal
    answer could not say less), staying inside the picture.
    """
    out: dict[str, list[PictureBox]] = {}
    ny, nx = shape
    for s in rec.sources:
        if s.normalised:
            xc, yc, w, h = s.box
            u0, v0, u1, v1 = xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2
            if not all(math.isfinite(v) for v in s.box) or w <= 0 or h <= 0:
                raise RecordError(f"box {list(s.box)} is not a valid [x_center, y_center, width, height]")
            if min(u0, v0) < -BOX_TOLERANCE or max(u1, v1) > 1 + BOX_TOLERANCE:
                raise RecordError(f"box {list(s.box)} lies outside its image")
            # normalised to the record's own image, which sits at the picture's mosaic offset
            own = Transform.identity(nx, ny, transform.x0, transform.y0)
            X0, Y0, X1, Y1 = own.box_to_mosaic(u0, v0, u1, v1)
        else:
            X0, Y0, X1, Y1 = s.box
        p0, q0, p1, q1 = transform.mosaic_box_to_normalised(X0, Y0, X1, Y1)
        if not (X1 > X0 and Y1 > Y0):
            raise RecordError(f"box {list(s.box)} has zero or negative size")
        if min(p0, q0) < -BOX_TOLERANCE or max(p1, q1) > 1 + BOX_TOLERANCE:
            raise RecordError(f"box {[round(v, 2) for v in s.box]} (pixels) lies outside its image")
        clip = _at_least(*(min(max(v, 0.0), 1.0) for v in (p0, q0, p1, q1)))
        for cls in s.classes:
            out.setdefault(cls, []).append(PictureBox(*clip, label=cls))
    return out


def _at_least(u0, v0, u1, v1, size=MIN_BOX):
    def grow(a, b):
        if b - a >= size:
            return a, b
        c = min(max((a + b) / 2, size / 2), 1 - size / 2)
        return c - size / 2, c + size / 2

    (u0, u1), (v0, v1) = grow(u0, u1), grow(v0, v1)
    return u0, v0, u1, v1


def facts_for(rec: Record, boxes: dict[str, list[PictureBox]], data, width_arcsec,
              height_arcsec) -> ImageFacts:
    border = rec.border
    if border is None and rec.labels is None:
        border = bool(not np.isfinite(data).all())   # blank (NaN) pixels in the picture
    return ImageFacts(**{**rec.truth(), "border": border}, boxes=boxes, box_classes=frozenset(rec.box_classes),
                      width_arcsec=width_arcsec, height_arcsec=height_arcsec)


# ------------------------------------------------------------------ splits
def parse_split(text: str | None) -> dict[str, float] | None:
    """'0.8,0.1,0.1' (train/val/test), '0.9,0.1' (train/test) or 'train=0.8,val=0.2' → fractions."""
    if not text:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if all("=" in p for p in parts):
            pairs = [(k.strip(), float(v)) for k, v in (p.split("=", 1) for p in parts)]
        else:
            names = {2: ("train", "test"), 3: ("train", "val", "test")}.get(len(parts))
            if names is None:
                raise ValueError
            pairs = list(zip(names, (float(p) for p in parts)))
    except ValueError:
        raise RadioLlavaError(f"--split {text!r}: write e.g. 0.8,0.1,0.1 or train=0.9,test=0.1") from None
    values = [v for _, v in pairs]
    if any(v < 0 for v in values) or sum(values) <= 0 or len({k for k, _ in pairs}) != len(pairs):
        raise RadioLlavaError(f"--split {text!r}: fractions must be ≥ 0, not all 0, names distinct")
    total = sum(v for _, v in pairs)
    return {k: v / total for k, v in pairs}


def assign_splits(groups: dict[str, tuple[str, ...]], fractions: dict[str, float],
                  seed: int = 0) -> dict[str, str]:
    """Split record ids so that records sharing any group key (same image, same source, shared
    pixels) land in the same split; groups are shuffled by a seeded hash and filled greedily."""
    parent: dict[str, str] = {}

    def find(k):
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for rid, keys in groups.items():
        root = find(f"id:{rid}")
        for key in keys:
            other = find(key)
            if other != root:
                parent[other] = root
    members: dict[str, list[str]] = {}
    for rid in groups:
        members.setdefault(find(f"id:{rid}"), []).append(rid)
    order = sorted(members, key=lambda r: hashlib.sha256(f"{seed}:{min(members[r])}".encode()).hexdigest())
    n = len(groups)
    filled = {k: 0 for k in fractions}
    out = {}
    for root in order:
        # the split furthest below its target share takes the next group
        name = min(fractions, key=lambda k: (filled[k] - fractions[k] * n) / max(fractions[k], 1e-9)
                   if fractions[k] > 0 else math.inf)
        for rid in members[root]:
            out[rid] = name
        filled[name] += len(members[root])
    return out


# ------------------------------------------------------------------ the build
@dataclass
class BuildOptions:
    kind: str
    input: str
    out: str
    catalogue: str | None = None
    profile: str = "radio-llava"
    split: str | None = None
    seed: int = 0
    on_error: str = "skip"
    phrasing: str = "catalogue"
    scheme: str = "auto"
    classes: str | None = None
    cutout_size: int = 128
    overlap: int = 0
    box_classes: str | None = None
    box_scale: float = 1.5
    extended_beams: float = 2.0
    augment: object = None                # a model spec (str) or an Assistant
    augment_turns: int = 3
    temperature: float = 0.5
    limit: int | None = None
    overwrite: bool = False               # replace an earlier build in ``out``
    progress: bool = True


def _stable_seed(seed: int, rid: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{rid}".encode()).digest()[:8], "little")


def build_dataset(opts: BuildOptions, log=None) -> dict:
    """Build the LLaVA conversation dataset described by ``opts``; returns the report. Nothing is
    left behind when the build fails or no record could be built."""
    from glue_radiollava.core.profiles import get_profile

    log = log or (lambda msg: print(msg, file=sys.stderr))
    if opts.kind not in READERS:
        raise RadioLlavaError(f"unknown input kind {opts.kind!r}; use one of {', '.join(KINDS)}")
    if opts.on_error not in ("skip", "stop"):
        raise RadioLlavaError(f"--on-error {opts.on_error!r}: use skip or stop")
    out = Path(opts.out)
    if out.suffix.lower() != ".json":
        raise RadioLlavaError(f"--out {out}: give a .json file name")
    pictures = out.parent / f"{out.stem}_images"
    check_outputs({"--out": out, "--out (its .meta.json)": out.parent / f"{out.stem}.meta.json"},
                  [opts.input, opts.catalogue], overwrite=opts.overwrite)
    if pictures.is_dir() and any(pictures.iterdir()) and not opts.overwrite:
        raise RadioLlavaError(f"--out {out}: its picture folder {pictures} is not empty; choose a new name "
                              "or add --overwrite")
    profile = get_profile(opts.profile)
    fractions = parse_split(opts.split)
    created = not pictures.exists()
    pictures.mkdir(exist_ok=True)
    try:
        return _build(opts, out, pictures, profile, fractions, log)
    except BaseException:
        if created:                       # a failed build leaves nothing behind
            shutil.rmtree(pictures, ignore_errors=True)
        raise


def _build(opts: BuildOptions, out: Path, pictures: Path, profile, fractions, log) -> dict:
    from PIL import Image
    from tqdm import tqdm

    from glue_radiollava.core.profiles import render_array

    assistant = None
    if isinstance(opts.augment, str) and opts.augment:
        from glue_radiollava.core.assistant import Assistant

        assistant = Assistant(opts.augment)
    elif opts.augment is not None:
        assistant = opts.augment          # an Assistant (or a stand-in with .ask and .profile)

    reader = READERS[opts.kind](Path(opts.input), catalogue=opts.catalogue, scheme=opts.scheme,
                                classes=opts.classes, cutout_size=opts.cutout_size, overlap=opts.overlap,
                                box_classes=opts.box_classes, box_scale=opts.box_scale,
                                extended_beams=opts.extended_beams)
    pixels = _Pixels(profile)
    records: list[dict] = []
    meta: dict[str, dict] = {}
    groups: dict[str, tuple[str, ...]] = {}
    skipped: dict[str, int] = {}
    problems: list[str] = []
    notes: list[str] = []
    tasks: dict[str, int] = {}
    aug_ok = aug_failed = 0
    used: set[str] = set()

    def fail(rid: str, message: str):
        if opts.on_error == "stop":
            raise RadioLlavaError(f"record {rid}: {message} (use --on-error skip to skip such records)")
        kind = next((reason for phrase, reason in SKIP_REASONS if phrase in message), "other")
        skipped[kind] = skipped.get(kind, 0) + 1
        problems.append(f"{rid}: {message}")
        log(f"skipped {rid}: {message}")

    bar = tqdm(desc=f"build {opts.kind}", unit="img", disable=None if opts.progress else True)
    try:
        for rec in reader:
            if opts.limit is not None and len(records) >= opts.limit:
                break
            if isinstance(rec, Problem):
                fail(rec.id, rec.message)
                continue
            if isinstance(rec, Note):
                notes.append(rec.message)
                log(rec.message)
                continue
            rid = safe_id(rec.id)
            base, k = rid, 2
            while rid in used:
                rid, k = f"{base}-{k}", k + 1
            try:
                data, x0, y0, wcs, w_as, h_as = pixels.load(rec)
                rgb, transform = render_array(data, profile, x0, y0, wcs)
                boxes = picture_boxes(rec, transform, data.shape)
                facts = facts_for(rec, boxes, data, w_as, h_as)
            except RecordError as exc:
                fail(rid, str(exc))
                continue
            except (OSError, ValueError, TypeError) as exc:   # a truncated or corrupt file: skipped, counted
                fail(rid, f"unreadable {rec.image}: {(str(exc).splitlines() or [type(exc).__name__])[0][:120]}")
                continue
            rng = np.random.default_rng(_stable_seed(opts.seed, rid))
            turns = default_turns(facts, rng, opts.phrasing)
            if assistant is not None:
                try:
                    turns += _augment(assistant, data, x0, y0, wcs, transform, rgb, profile, turns, opts, rid)
                    aug_ok += 1
                except (ValueError, RadioLlavaError, RuntimeError) as exc:
                    aug_failed += 1
                    problems.append(f"{rid}: augmentation failed ({str(exc)[:120]}); "
                                    "kept the templated turns")
            used.add(rid)
            rel = f"{pictures.name}/{rid}.png"
            picture = Image.fromarray(rgb, mode="RGB")
            atomic_write(pictures / f"{rid}.png", lambda tmp, im=picture: im.save(tmp, format="PNG"))
            records.append(to_llava(rid, rel, turns))
            for t in turns:
                tasks[t.task] = tasks.get(t.task, 0) + 1
            groups[rid] = rec.groups or (str(rec.image),)
            meta[rid] = {"image": str(rec.image), "hdu": rec.hdu,
                         "pixel_box": list(rec.region) if rec.region else None,
                         "labels": list(rec.labels) if rec.labels is not None else None,
                         "peculiarity": facts.peculiarity, "smorph": rec.smorph, "fr_class": rec.fr_class,
                         "border": facts.border,
                         "boxes": {c: [b.to_yolo() for b in bs] for c, bs in boxes.items()},
                         "transform": transform.to_dict()}
            bar.update(1)
    finally:
        bar.close()
        pixels.close()

    if not records:
        shown = "; ".join(problems[:3]) or "the input holds no records"
        raise RadioLlavaError(f"{opts.input}: no record could be built ({shown}); nothing written")
    split_of = assign_splits(groups, fractions, opts.seed) if fractions else {}
    written = []
    if fractions:
        for name in fractions:
            part = [r for r in records if split_of[r["id"]] == name]
            path = out.parent / f"{out.stem}_{name}.json"
            atomic_write_text(path, json.dumps(part, indent=1, ensure_ascii=False) + "\n")
            written.append(str(path))
    else:
        atomic_write_text(out, json.dumps(records, indent=1, ensure_ascii=False) + "\n")
        written.append(str(out))
    for rid in meta:
        meta[rid]["split"] = split_of.get(rid)
    report = {
        "kind": opts.kind, "input": str(opts.input), "images": len(records),
        "turns": sum(tasks.values()), "questions": dict(sorted(tasks.items())),
        "skipped": sum(skipped.values()), "skipped_by_reason": skipped, "notes": notes,
        "splits": {k: sum(v == k for v in split_of.values()) for k in fractions} if fractions else None,
        "augmented": {"ok": aug_ok, "failed": aug_failed} if assistant is not None else None,
        "files": written, "pictures": str(pictures),
    }
    doc = {"format": "llava-conversations", "version": 1,
           "builder": {"kind": opts.kind, "input": str(opts.input), "catalogue": opts.catalogue,
                       "seed": opts.seed, "phrasing": opts.phrasing, "split": fractions,
                       "augment": opts.augment if isinstance(opts.augment, (str, type(None))) else
                       type(opts.augment).__name__, "image_folder": str(out.parent)},
           "profile": profile.to_dict(), "report": report, "problems": problems, "records": meta}
    atomic_write_text(out.parent / f"{out.stem}.meta.json", json.dumps(doc, indent=1) + "\n")
    report["meta"] = str(out.parent / f"{out.stem}.meta.json")
    return report


def _augment(assistant, data, x0, y0, wcs, transform, rgb, profile, turns: list[Turn], opts,
             rid) -> list[Turn]:
    """VLM-generated turns for one picture, rendered with the assistant's own profile."""
    from PIL import Image

    from glue_radiollava.core.profiles import ModelView, render_array

    if assistant.profile.to_dict() != profile.to_dict():
        rgb, transform = render_array(data, assistant.profile, x0, y0, wcs)
    view = ModelView(Image.fromarray(rgb, mode="RGB"), transform, assistant.profile)
    description = turns[0].answer
    return augment_turns(assistant, view, description, n=opts.augment_turns, temperature=opts.temperature,
                         seed=_stable_seed(opts.seed, rid) % (2 ** 31), known={t.question for t in turns})

