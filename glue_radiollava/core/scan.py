"""Survey scans: tile a mosaic, find boxes on every tile, merge them on the sky, write a catalogue.

The flow:

1. ``plan_tiles`` cuts the mosaic (or the bounding box of a region) into square tiles that
   overlap by a fraction, the last row and column flush with the edge (no padding);
2. a *detector* finds boxes on a batch of tile cutouts: ``AssistantDetector`` asks box tasks of
   the loaded model (batched ``ask``; boxes placed through each picture's Transform), and
   anything with the same ``describe``/``detect`` methods works too (the islands baseline);
3. each finished tile is appended to a journal (JSON lines, flushed per batch), so a cancelled
   or crashed scan keeps what it found and ``resume`` continues where it stopped;
4. ``merge`` removes the duplicates that overlapping tiles produce: non-maximum suppression of
   boxes of the same class, measured in a tangent plane on the sky (arcsec), boxes cut by an inner
   tile edge ranked below whole ones;
5. ``write_outputs`` writes the catalogue (RA, Dec, size, class, score, tile, task) and sky regions.

Tiles without data (all NaN or constant) are skipped and counted. Several processes (``accelerate
launch``) each take every ``count``-th tile (``shard``) and write their own journal part; the
main process gathers the parts (``gather_journals``).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import RadioLlavaError
from .files import JsonlAppender, atomic_write_text, read_jsonl
from .skyregions import SkyBox, write_catalogue, write_regions

JOURNAL_SUFFIX = ".scan.jsonl"
EDGE_TOLERANCE_PX = 1.0          # a box within this of an inner tile edge is "cut by the tile"


@dataclass(frozen=True)
class Tile:
    index: int
    x0: int                       # mosaic pixels [x0, x1) × [y0, y1)
    y0: int
    x1: int
    y1: int

    def to_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]


@dataclass(frozen=True)
class Detection:
    """A box found on one tile."""

    box: SkyBox
    tile: int
    task: str
    cut_by_tile: bool = False     # touches an inner tile edge: the source may go on in the next tile

    def to_dict(self) -> dict:
        return {**self.box.to_dict(), "tile": self.tile, "task": self.task, "cut_by_tile": self.cut_by_tile}

    @classmethod
    def from_dict(cls, d: dict) -> "Detection":
        return cls(SkyBox.from_dict(d), int(d["tile"]), str(d.get("task") or ""), bool(d.get("cut_by_tile")))


@dataclass
class ScanResult:
    detections: list[Detection]           # after merging
    found: int                            # before merging
    tiles_total: int
    tiles_done: int
    tiles_blank: int
    seconds: float
    complete: bool
    journal: Path | None = None
    header: dict = field(default_factory=dict)

    @property
    def boxes(self) -> list[SkyBox]:
        return [d.box for d in self.detections]


# ------------------------------------------------------------------ tiles
def _starts(lo: int, hi: int, tile: int, step: int) -> list[int]:
    starts = list(range(lo, hi - tile + 1, step))
    if starts[-1] + tile < hi:
        starts.append(hi - tile)           # the last tile flush with the edge
    return starts


def plan_tiles(shape: tuple[int, int], tile: int, overlap: float = 0.25,
               bounds: tuple[int, int, int, int] | None = None) -> list[Tile]:
    """Square tiles of ``tile`` pixels over ``bounds`` (x0, y0, x1, y1; default the whole image)."""
    ny, nx = shape
    x0, y0, x1, y1 = bounds if bounds is not None else (0, 0, nx, ny)
    x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(nx, int(x1)), min(ny, int(y1))
    what = "the image" if bounds is None else "the region"
    if x1 <= x0 or y1 <= y0:
        raise RadioLlavaError(f"the region lies outside the image ({nx}×{ny} pixels)")
    if not 0 <= overlap < 0.95:
        raise RadioLlavaError(f"overlap {overlap} must be a fraction of the tile, 0 to 0.9")
    if tile < 8:
        raise RadioLlavaError(f"tile size {tile} px is too small; use at least 8")
    if tile > x1 - x0 or tile > y1 - y0:
        raise RadioLlavaError(f"tile size {tile} px is larger than {what} ({x1 - x0}×{y1 - y0} pixels); "
                              f"use --tile {min(x1 - x0, y1 - y0)} or less")
    step = max(1, int(round(tile * (1 - overlap))))
    return [Tile(i, tx, ty, tx + tile, ty + tile)
            for i, (ty, tx) in enumerate((ty, tx) for ty in _starts(y0, y1, tile, step)
                                         for tx in _starts(x0, x1, tile, step))]


def read_tile(image, tile: Tile):
    """The tile's Cutout, or None when it holds no data (all NaN or constant)."""
    from .image import Cutout

    pixels = image.read((slice(tile.y0, tile.y1), slice(tile.x0, tile.x1)))
    finite = np.isfinite(pixels)
    if not finite.any() or np.nanmax(pixels) == np.nanmin(pixels):
        return None
    return Cutout(pixels, tile.x0, tile.y0, image)


def region_bounds(image, path: str | Path):
    """A region file → (pixel bounding box, pixel region) on ``image``."""
    from .image import read_first_region, region_on_image

    region, bounds = region_on_image(read_first_region(path, image.wcs), image.wcs, path)
    return bounds, region


def _cut_by_tile(pixel_box, tile: Tile, bounds: tuple[int, int, int, int]) -> bool:
    """True when the box touches a tile edge that is not the edge of the scanned area."""
    from .transform import index_box_to_edges

    X0, Y0, X1, Y1 = pixel_box
    bx0, by0, bx1, by1 = bounds
    ex0, ey0, ex1, ey1 = index_box_to_edges(tile.x0, tile.y0, tile.x1, tile.y1)
    t = EDGE_TOLERANCE_PX
    return ((tile.x0 > bx0 and X0 <= ex0 + t) or (tile.x1 < bx1 and X1 >= ex1 - t)
            or (tile.y0 > by0 and Y0 <= ey0 + t) or (tile.y1 < by1 and Y1 >= ey1 - t))


# ------------------------------------------------------------------ detectors
def box_tasks(names: Sequence[str]) -> list:
    """Catalogue tasks by name, each checked to be a box task."""
    from .tasks import get_task

    tasks = [get_task(str(n).strip()) for n in names if str(n).strip()]
    if not tasks:
        raise RadioLlavaError("no task: give a box task such as boxes-compact (`radiollava tasks`)")
    for t in tasks:
        if t.kind != "boxes":
            raise RadioLlavaError(f"task {t.name!r} asks for {t.kind}, not boxes; a scan needs box tasks "
                                  "(`radiollava tasks` lists them: boxes-compact, boxes-extended, …)")
    return tasks


class AssistantDetector:
    """Box tasks asked of a loaded model, one batched ``generate`` per task and batch of tiles."""

    def __init__(self, assistant, tasks: Sequence[str], max_new_tokens: int = 128):
        self.assistant = assistant
        self.tasks = box_tasks(tasks)
        self.max_new_tokens = int(max_new_tokens)

    def describe(self) -> dict:
        loaded = self.assistant.loaded
        return {"detector": "assistant", "model": loaded.spec.model, "model_sha256": loaded.sha256,
                "adapter": loaded.spec.adapter, "profile": self.assistant.profile.to_dict(),
                "tasks": [t.name for t in self.tasks], "max_new_tokens": self.max_new_tokens}

    def detect(self, cutouts) -> list[tuple[list[tuple[str, SkyBox]], list[dict]]]:
        """Per cutout: the (task, SkyBox) pairs found and the raw answers (task, text, confidence)."""
        views = [self.assistant.view(c) for c in cutouts]
        out = [([], []) for _ in cutouts]
        for task in self.tasks:
            answers = self.assistant.ask_batch(views, task=task, max_new_tokens=self.max_new_tokens)
            for (found, raw), ans in zip(out, answers):
                for b in ans.boxes:
                    if b.score is None and ans.confidence is not None:
                        b = SkyBox(b.label, b.picture_box, b.pixel_box, b.ra, b.dec, b.width_arcsec,
                                   b.height_arcsec, ans.confidence, b.frame)
                    found.append((task.name, b))
                raw.append({"task": task.name, "text": ans.text, "confidence": ans.confidence,
                            "unparsed": bool(ans.parsed.unparsed), "warnings": ans.warnings})
        return out


# ------------------------------------------------------------------ journal
def journal_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + JOURNAL_SUFFIX)


def _part(journal: Path, rank: int, count: int) -> Path:
    return journal if count == 1 else journal.with_name(journal.name.replace(JOURNAL_SUFFIX, f".rank{rank}{JOURNAL_SUFFIX}"))


def _journal_files(journal: Path) -> list[Path]:
    stem = journal.name[:-len(JOURNAL_SUFFIX)]
    return [journal] * journal.exists() + sorted(journal.parent.glob(f"{stem}.rank*{JOURNAL_SUFFIX}"))


def check_journal(journal: Path, resume: bool) -> None:
    """Refuse to start over an earlier scan's journal unless resuming. Sharded runs call this on
    every process before any of them writes (then pass ``resume=True`` to ``scan``)."""
    existing = _journal_files(journal)
    if existing and not resume:
        if not read_journal(journal)[1]:       # only a header: a scan that never finished a tile
            for path in existing:
                path.unlink(missing_ok=True)      # sharded runs: another process may have been first
            return
        raise RadioLlavaError(f"{existing[0]} holds an earlier scan; add --resume to continue it, "
                              "or choose another --out")


def read_journal(journal: Path, header: dict | None = None) -> tuple[dict, dict[int, dict]]:
    """Tile records of a journal and its rank parts → (header, {tile index: record})."""
    files = _journal_files(journal)
    found_header, records = None, {}
    for path in files:
        for rec in read_jsonl(path):       # a line cut by a crash is left out: that tile is redone
            if "header" in rec:
                if header is not None and rec["header"] != header:
                    diff = sorted(k for k in set(header) | set(rec["header"])
                                  if header.get(k) != rec["header"].get(k))
                    raise RadioLlavaError(f"{path} belongs to a scan with other settings ({', '.join(diff)}); "
                                          "use another --out, or remove it to start again")
                found_header = rec["header"]
            else:
                records[int(rec["tile"])] = rec
    return found_header or {}, records


def gather_journals(journal: Path) -> None:
    """Fold the rank parts of a sharded scan into one journal (main process, after all finished)."""
    parts = [p for p in _journal_files(journal) if p != journal]
    if not parts:
        return
    header, records = read_journal(journal)
    lines = [json.dumps({"header": header})] + [json.dumps(records[k]) for k in sorted(records)]
    atomic_write_text(journal, "\n".join(lines) + "\n")
    for p in parts:
        p.unlink()


# ------------------------------------------------------------------ merging
def _overlaps(ra, dec, w, h, i: int, js: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and intersection-over-smaller of box i with boxes js, in arcsec on i's tangent plane."""
    dra = (ra[js] - ra[i] + 180.0) % 360.0 - 180.0
    dx = dra * np.cos(np.radians(dec[i])) * 3600.0
    dy = (dec[js] - dec[i]) * 3600.0
    ix = np.clip(np.minimum(w[i] / 2, dx + w[js] / 2) - np.maximum(-w[i] / 2, dx - w[js] / 2), 0, None)
    iy = np.clip(np.minimum(h[i] / 2, dy + h[js] / 2) - np.maximum(-h[i] / 2, dy - h[js] / 2), 0, None)
    inter = ix * iy
    area_i, area_j = w[i] * h[i], w[js] * h[js]
    union = area_i + area_j - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    smaller = np.minimum(area_i, area_j)
    contained = np.where(smaller > 0, inter / np.where(smaller > 0, smaller, 1), 0.0)
    return iou, contained


def merge(detections: Sequence[Detection], iou: float = 0.5, contained: float = 0.8) -> list[Detection]:
    """Non-maximum suppression on the sky, class by class.

    Boxes are ranked whole-before-cut (a box touching an inner tile edge may be a truncated view of
    a source another tile holds whole), then by score, then by area. A box is dropped when it
    overlaps a kept box of its class with IoU ≥ ``iou`` or lies ≥ ``contained`` inside it (or it
    inside the box). Overlaps are measured in arcsec on the tangent plane at the kept box.
    """
    from scipy.spatial import cKDTree

    dets = list(detections)
    if not dets:
        return []
    ra = np.array([d.box.ra for d in dets])
    dec = np.array([d.box.dec for d in dets])
    w = np.array([d.box.width_arcsec for d in dets])
    h = np.array([d.box.height_arcsec for d in dets])
    score = np.array([-1.0 if d.box.score is None else d.box.score for d in dets])
    labels = np.array([str(d.box.label or "") for d in dets])
    xyz = np.stack([np.cos(np.radians(dec)) * np.cos(np.radians(ra)),
                    np.cos(np.radians(dec)) * np.sin(np.radians(ra)), np.sin(np.radians(dec))], axis=1)
    reach = np.radians(np.hypot(w, h).max() / 3600.0)           # two half-diagonals
    tree = cKDTree(xyz)
    order = sorted(range(len(dets)), key=lambda k: (dets[k].cut_by_tile, -score[k], -w[k] * h[k], k))
    kept = np.zeros(len(dets), bool)
    for k in order:
        near = np.array(tree.query_ball_point(xyz[k], 2 * np.sin(reach / 2) + 1e-12), dtype=int)
        near = near[kept[near] & (labels[near] == labels[k])]
        if near.size:
            i_o, c_o = _overlaps(ra, dec, w, h, k, near)
            if (i_o >= iou).any() or (c_o >= contained).any():
                continue
        kept[k] = True
    return [d for k, d in enumerate(dets) if kept[k]]


# ------------------------------------------------------------------ the scan
def image_fingerprint(image) -> dict:
    """What identifies a mosaic for a journal or an index: path, size, mtime, shape, WCS."""
    p = Path(image.path) if image.path else None
    st = p.stat() if p is not None and p.exists() else None
    return {"path": str(p.resolve()) if p else None, "hdu": image.hdu, "bytes": st.st_size if st else None,
            "mtime_ns": st.st_mtime_ns if st else None, "shape": list(image.shape),
            "wcs": image.wcs.to_header_string(relax=True) if image.wcs is not None else None}


def scan(image, detector, tiles: Sequence[Tile], journal: str | Path | None = None, *,
         batch_size: int = 8, settings: dict | None = None, resume: bool = False,
         keep=None, bounds: tuple[int, int, int, int] | None = None, shard: tuple[int, int] = (0, 1),
         iou: float = 0.5, on_progress: Callable[[int, int], None] | None = None,
         cancel: threading.Event | None = None) -> ScanResult:
    """Run ``detector`` over ``tiles`` of ``image`` (a RadioImage: it always has a celestial WCS).

    ``journal``: JSON-lines file recording each finished tile; an existing one is refused unless
    ``resume`` (then its tiles are not asked again, and its settings must match; with several
    processes the caller runs ``check_journal`` on each before they start). ``keep``: an
    optional pixel region; boxes whose centre lies outside it are dropped. ``shard``: (rank, count)
    — this process scans tiles rank, rank + count, …. ``cancel.set()`` stops after the current
    batch; what is done stays in the journal. Returns the merged result over every tile the
    journal holds (all ranks' parts).
    """
    rank, count = shard
    ny, nx = image.shape
    bounds = bounds or (0, 0, nx, ny)
    header = {"version": 1, "image": image_fingerprint(image), "detector": detector.describe(),
              "tiles": len(tiles), **(settings or {})}
    journal = Path(journal) if journal is not None else None
    done: dict[int, dict] = {}
    if journal is not None:
        if count == 1:
            check_journal(journal, resume)
        if _journal_files(journal):
            _, done = read_journal(journal, header)
    mine = [t for t in tiles if t.index % count == rank and t.index not in done]
    total = len([t for t in tiles if t.index % count == rank])
    t0 = time.perf_counter()
    part = _part(journal, rank, count) if journal is not None else None
    records: dict[int, dict] = dict(done)
    with contextlib.ExitStack() as stack:
        f = None
        if part is not None:
            part.parent.mkdir(parents=True, exist_ok=True)
            fresh = not part.exists()
            f = stack.enter_context(JsonlAppender(part))
            if fresh:
                f.write({"header": header})
        finished = total - len(mine)
        if on_progress:
            on_progress(finished, total)
        for start in range(0, len(mine), max(1, int(batch_size))):
            if cancel is not None and cancel.is_set():
                break
            batch = mine[start:start + batch_size]
            cutouts, new = [], []
            for t in batch:
                cut = read_tile(image, t)
                if cut is None:
                    new.append({"tile": t.index, "box": t.to_list(), "blank": True, "boxes": [], "answers": []})
                else:
                    cutouts.append((t, cut))
            results = detector.detect([c for _, c in cutouts]) if cutouts else []
            for (t, _), (found, raw) in zip(cutouts, results):
                dets = [Detection(b, t.index, task, _cut_by_tile(b.pixel_box, t, bounds)) for task, b in found]
                new.append({"tile": t.index, "box": t.to_list(), "blank": False,
                            "boxes": [d.to_dict() for d in dets], "answers": raw})
            new.sort(key=lambda r: r["tile"])
            for rec in new:
                records[rec["tile"]] = rec
            if f is not None:
                f.write(*new)
            finished += len(batch)
            if on_progress:
                on_progress(finished, total)
    if journal is not None:          # other ranks' tiles count too (resume, or after gathering)
        result = result_from_journal(journal, tiles, keep, iou)
    else:
        result = collect(records, tiles, keep=keep, iou=iou)
    result.seconds = time.perf_counter() - t0
    result.header = header
    return result


def result_from_journal(journal: Path, tiles: Sequence[Tile], keep=None, iou: float = 0.5) -> ScanResult:
    """The merged result of everything a journal (and its rank parts) holds."""
    _, records = read_journal(journal)
    result = collect(records, tiles, keep=keep, iou=iou)
    result.journal = journal
    return result


def collect(records: dict[int, dict], tiles: Sequence[Tile], keep=None, iou: float = 0.5) -> ScanResult:
    """Journal records → merged ScanResult (``keep``: pixel region the box centres must lie in)."""
    from regions import PixCoord

    dets = [Detection.from_dict(d) for rec in records.values() for d in rec.get("boxes", [])]
    if keep is not None and dets:
        centres = PixCoord(np.array([(d.box.pixel_box[0] + d.box.pixel_box[2]) / 2 for d in dets]),
                           np.array([(d.box.pixel_box[1] + d.box.pixel_box[3]) / 2 for d in dets]))
        inside = np.atleast_1d(keep.contains(centres))
        dets = [d for d, ok in zip(dets, inside) if ok]
    merged = merge(dets, iou=iou)
    merged.sort(key=lambda d: (d.box.dec, d.box.ra))
    return ScanResult(merged, len(dets), len(tiles), len(records),
                      sum(bool(r.get("blank")) for r in records.values()), 0.0,
                      all(t.index in records for t in tiles))


def scan_columns(result: ScanResult) -> dict:
    """The catalogue columns a scan adds to the boxes' own: tile, task, cut_by_tile."""
    import numpy as np       # typed: an empty scan's columns keep their types (int, text, bool)

    found = result.detections
    return {"tile": np.array([d.tile for d in found], dtype=int),
            "task": np.array([d.task for d in found], dtype=str) if found else np.array([], dtype="U1"),
            "cut_by_tile": np.array([d.cut_by_tile for d in found], dtype=bool)}


def scan_meta(result: ScanResult, meta: dict | None = None) -> dict:
    """The catalogue header of a scan: complete or not, tiles scanned and blank, boxes found."""
    return {"SCANDONE": result.complete, "NTILES": result.tiles_total, "NSCANNED": result.tiles_done,
            "NBLANK": result.tiles_blank, "NFOUND": result.found, **(meta or {})}


def write_outputs(result: ScanResult, out: str | Path, regions_out: str | Path | None, wcs,
                  meta: dict | None = None) -> list[Path]:
    """The catalogue (with tile and task columns) and, when asked, the sky regions."""
    written = [write_catalogue(out, result.boxes, extra=scan_columns(result), meta=scan_meta(result, meta))]
    if regions_out:
        written.append(write_regions(regions_out, result.boxes, wcs))
    return written
