"""Benchmark data: reference coarse-label JSON, simulator folders and the built-in real sets.

``--data`` takes
- a reference coarse-label JSON file, ``{"data": [{"sname", "filepaths", "label"}]}`` (published
  test sets run as they are; image paths are read as given, or relative to the JSON's folder);
  a record may also carry ``"cutout": [x0, y0, x1, y1]`` (pixels to cut, x1/y1 exclusive) and, for
  B7, ``"boxes": [{"label", "pixel_box": [x0, y0, x1, y1]}]`` (0-based pixel edges);
- a simulator output folder (``radiollava simulate``): labels.json (B1, B3, B4), smorph.json (B2),
  peculiarity.json (B5), frclass.json (B6), objects.json (B7 boxes), all read as data files;
- a built-in real set from the shared data folder (``BUILTINS``).

A label list (the radioimg-multilabel scheme) answers B1 (its EXTENDED/DIFFUSE/DIFFUSE-LARGE
labels, none → NONE), B3 (RADIO-GALAXY), B4 (ARTIFACT) and B5 (PECULIAR; else COMPLEX when
extended/diffuse; else ORDINARY). A single label answers the task whose label set holds it.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.files import data_root
from glue_radiollava.core.labels import MULTILABELS, canonical_label, peculiarity_of
from glue_radiollava.core.references import TruthBox, read_json, reference_items, simulator_images
from glue_radiollava.core.transform import index_box_around, radec_to_pixel

from .tasks import CODES, DETECTION, BenchTask, box_tasks, get_bench


BUILTINS = {
    "mirabest": ("B6", "MiraBest FIRST cutouts, confident FR-I/FR-II (mirabest_first/labels.csv)"),
    "mirabest-all": ("B6", "MiraBest FIRST cutouts, confident and uncertain FR-I/FR-II"),
    "frdeep": ("B6", "FRDEEP-v2 FIRST cutouts, FR-I/FR-II (frdeep/labels.csv)"),
    "frdeep-train": ("B6", "FRDEEP-v2 FIRST cutouts, train split"),
    "frdeep-test": ("B6", "FRDEEP-v2 FIRST cutouts, test split"),
    "frdeep-nvss": ("B6", "FRDEEP-v2 NVSS cutouts, FR-I/FR-II"),
    "rgz": ("B2", "Radio Galaxy Zoo sources in the shipped FIRST cutouts, C/P classes, cut around each"),
    "lotss": ("B7", "LoTSS-DR1 mosaics P205+55 and P218+55, boxes from the PyBDSF catalogue"),
}
SIM_FILES = {"labels.json": ("B1", "B3", "B4", "B5"), "smorph.json": ("B2",),
             "peculiarity.json": ("B5",), "frclass.json": ("B6",), "objects.json": ("B7",)}
RGZ_MIN_CUTOUT = 48          # pixels: the smallest B2 cutout side
RGZ_MARGIN = 1.5             # cutout side = this × the larger RGZ box side
LOTSS_ISOPHOTE_SIGMA = 3.0   # LoTSS boxes: the fitted Gaussian's extent down to this × the island rms


@dataclass(frozen=True)
class Sample:
    """One labelled picture: an image file, optionally a pixel box of it, and its truth."""

    id: str
    path: str
    truth: tuple[str, ...]                        # labels (B7: the classes present)
    cutout: tuple[int, int, int, int] | None = None
    boxes: tuple[TruthBox, ...] = ()
    where: str = ""                               # where the record came from, for messages


@dataclass
class Dataset:
    bench: BenchTask
    samples: list[Sample]
    spec: str
    origin: str
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)


@dataclass
class _Raw:
    sname: str
    path: Path
    label: object
    where: str
    cutout: tuple[int, int, int, int] | None = None
    boxes: tuple[TruthBox, ...] | None = None


# ------------------------------------------------------------------ entry points
def load(spec: str, codes: list[str] | str = "all", root: str | Path | None = None,
         classes: list[str] | None = None) -> list[Dataset]:
    """The datasets ``spec`` holds for ``codes`` ('all': every benchmark it has labels for).

    A benchmark named explicitly that the data cannot answer is an error; with 'all' it is skipped.
    Each dataset is checked: images exist, labels lie in the task's label set, ids are unique, and
    it is not empty.
    """
    explicit = codes != "all" and codes != list(CODES)
    wanted = list(CODES) if codes == "all" else list(codes)
    per_code, origin = _read(spec, root, wanted if explicit else None)
    out = []
    for code in wanted:
        raws = per_code.get(code)
        if raws is None:
            if explicit:
                have = ", ".join(per_code) or "none"
                raise RadioLlavaError(f"--data {spec} holds no labels for {code} (it has: {have}); "
                                      "choose another --task or another --data")
            continue
        out.append(_dataset(code, raws, spec, origin, classes))
    if not out:
        raise RadioLlavaError(f"--data {spec}: no benchmark can be built from it")
    return out


def load_one(spec: str, code: str, root=None, classes=None) -> Dataset:
    return load(spec, [code], root, classes)[0]


# ------------------------------------------------------------------ reading the sources
def _read(spec: str, root, explicit: list[str] | None = None) -> tuple[dict[str, list[_Raw]], str]:
    """code → raw records, and a description of what was read.

    A reference JSON answers the benchmarks its first record's label fits; benchmarks named
    explicitly are all tried, so a label outside the set is reported with its record.
    """
    path = Path(spec).expanduser()
    if spec in BUILTINS and not path.exists():
        code, text = BUILTINS[spec]
        return {code: _builtin(spec, data_root(root))}, f"{text} in {data_root(root)}"
    if path.is_dir():
        return _read_sim_folder(path), f"simulator folder {path.resolve()}"
    if path.is_file():
        doc = read_json(path)
        if isinstance(doc, dict) and "images" in doc:          # a simulator objects.json
            return {DETECTION: _sim_objects(path)}, f"simulator objects file {path.resolve()}"
        raws = _json_records(path)
        return _codes_for(raws, path, explicit), f"reference JSON {path.resolve()}"
    names = ", ".join(BUILTINS)
    raise RadioLlavaError(f"--data {spec!r}: no such file or folder, and not a built-in set ({names})")


def _json_records(path: Path) -> list[_Raw]:
    """A reference JSON's records (``core.references`` reads them); the first bad one stops the run."""
    raws = []
    for item in reference_items(path):
        if item.problem:
            raise RadioLlavaError(f"{item.where}: {item.problem}")
        boxes = item.boxes
        raws.append(_Raw(item.sname, item.image, item.label, item.where, item.cutout, boxes))
    return raws


def _codes_for(raws: list[_Raw], path: Path, explicit: list[str] | None) -> dict[str, list[_Raw]]:
    """The benchmarks a reference JSON can answer (judged from its first record unless ``explicit``)."""
    if not raws:
        raise RadioLlavaError(f"{path}: the dataset is empty (no records in 'data')")
    out = {}
    for code in CODES:
        if code == DETECTION:
            if all(r.boxes is not None for r in raws):
                out[code] = raws
            continue
        if explicit is not None and code in explicit:
            out[code] = raws    # checked record by record in _dataset
            continue
        try:
            derive_truth(get_bench(code), raws[0].label)
        except ValueError:
            continue
        out[code] = raws
    if not out:
        raise RadioLlavaError(f"{raws[0].where}: label {raws[0].label!r} fits no benchmark's label set; "
                              "check the file")
    return out


def _read_sim_folder(folder: Path) -> dict[str, list[_Raw]]:
    out: dict[str, list[_Raw]] = {}
    for name, codes in SIM_FILES.items():
        path = folder / name
        if not path.is_file():
            continue
        raws = _sim_objects(path) if name == "objects.json" else _json_records(path)
        if not raws:
            continue
        for code in codes:
            if code == "B5" and name == "labels.json" and (folder / "peculiarity.json").is_file():
                continue  # the simulator's own B5 classes win over the derived ones
            out[code] = raws
    if not out:
        raise RadioLlavaError(f"{folder}: not a simulator output folder (no labels.json, smorph.json, "
                              "peculiarity.json, frclass.json or objects.json)")
    return out


def _sim_objects(path: Path) -> list[_Raw]:
    """A simulator objects.json's images with their truth boxes (``core.references`` reads them)."""
    raws = []
    for img in simulator_images(path)[1]:
        if img.problem:
            raise RadioLlavaError(f"{img.where}: {img.problem}")
        boxes = tuple(TruthBox(cls, box) for classes, box in img.objects for cls in classes)
        raws.append(_Raw(img.sname, img.image, None, img.where, None, boxes))
    return raws


# ------------------------------------------------------------------ truth per benchmark
def derive_truth(bench: BenchTask, label) -> tuple[str, ...]:
    """The labels of ``bench`` a record's raw label gives; ValueError when it gives none."""
    from glue_radiollava.core.parsing import parse_labels, parse_yesno

    if isinstance(label, (list, tuple)):                  # the radioimg-multilabel scheme
        labels = {canonical_label(v) for v in label}
        unknown = sorted(v for v in labels if v not in MULTILABELS)
        if unknown:
            raise ValueError(f"labels {', '.join(unknown)} are not radioimg-multilabel labels "
                             f"({', '.join(MULTILABELS)})")
        if bench.kind == "multi":
            return tuple(v for v in bench.labels if v in labels)
        rule = bench.task.truth_from if bench.task is not None else None     # the task file says how
        if rule == "peculiarity":
            return (peculiarity_of(labels),)
        if rule in MULTILABELS and bench.kind == "yesno":
            return ("Yes",) if rule in labels else ("No",)
        raise ValueError(f"a label list gives no {bench.code} class (its task names no truth_from)")
    if isinstance(label, bool) and bench.kind == "yesno":
        return ("Yes",) if label else ("No",)
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"label {label!r} is not a string or a list of labels")
    if bench.kind == "yesno":
        if label.strip().capitalize() not in ("Yes", "No"):
            raise ValueError(f"label {label!r} is not Yes or No")
        return parse_yesno(label).labels
    if bench.kind in ("single", "multi"):
        parsed = parse_labels(label, bench.labels, multi=bench.kind == "multi", none_label=bench.none_label)
        if parsed.unparsed:
            raise ValueError(f"label {label!r} is not in the {bench.code} label set "
                             f"({', '.join(bench.labels)})")
        return parsed.labels
    raise ValueError(f"{bench.code} needs boxes, not labels")


def _dataset(code: str, raws: list[_Raw], spec: str, origin: str, classes) -> Dataset:
    bench = get_bench(code)
    if not raws:
        raise RadioLlavaError(f"--data {spec}: the {code} dataset is empty")
    samples, seen = [], {}
    for raw in raws:
        if raw.sname in seen:
            raise RadioLlavaError(f"{raw.where}: duplicate sname {raw.sname!r} (also {seen[raw.sname]}); "
                                  "every record needs its own sname")
        seen[raw.sname] = raw.where
        if not raw.path.is_file():
            raise RadioLlavaError(f"{raw.where}: image {raw.path} not found; fix the path "
                                  "(relative paths are read from the JSON's folder) or remove the record")
        if code == DETECTION:
            truth = tuple(sorted({b.label for b in raw.boxes or ()}))
            samples.append(Sample(raw.sname, str(raw.path), truth, raw.cutout, raw.boxes or (), raw.where))
            continue
        try:
            truth = derive_truth(bench, raw.label)
        except ValueError as exc:
            raise RadioLlavaError(f"{raw.where}: {exc}; fix the record or choose another --task") from None
        samples.append(Sample(raw.sname, str(raw.path), truth, raw.cutout, (), raw.where))
    notes = []
    if code == DETECTION:
        bench, notes = _detection_classes(bench, samples, classes)
    return Dataset(bench, samples, spec, origin, notes)


def _detection_classes(bench: BenchTask, samples: list[Sample], classes) -> tuple[BenchTask, list[str]]:
    """B7 asks for the classes present in the truth (or ``classes``), each through its box task."""
    known = box_tasks()
    present = sorted({b.label for s in samples for b in s.boxes})
    wanted = [c.upper() for c in classes] if classes else [c for c in known if c in present]
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise RadioLlavaError(f"no catalogue box task for class {', '.join(unknown)}; "
                              f"classes with one: {', '.join(known)}")
    if not wanted:
        raise RadioLlavaError("the B7 truth holds no box of a class the catalogue can ask for "
                              f"({', '.join(known)})")
    notes = [f"truth boxes of class {c} are not asked for (no catalogue box task)"
             for c in present if c not in known]
    return replace(bench, labels=tuple(wanted)), notes


# ------------------------------------------------------------------ built-in real sets
def _builtin(name: str, root: Path) -> list[_Raw]:
    if name.startswith("mirabest"):
        return _mirabest(root, confident_only=name == "mirabest")
    if name.startswith("frdeep"):
        survey = "NVSS" if name == "frdeep-nvss" else "FIRST"
        split = {"frdeep-train": "train", "frdeep-test": "test"}.get(name)
        return _frdeep(root, survey, split)
    if name == "rgz":
        return _rgz(root)
    if name == "lotss":
        return _lotss(root)
    raise RadioLlavaError(f"unknown built-in set {name!r}")


def _csv_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise RadioLlavaError(f"{path} not found; is --data-root the shared data folder?")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


_FR = {"FRI": "FR-I", "FRII": "FR-II"}


def _mirabest(root: Path, confident_only: bool) -> list[_Raw]:
    path = root / "mirabest_first" / "labels.csv"
    raws = []
    for i, row in enumerate(_csv_rows(path), 2):
        label = _FR.get(row["fr_class"])
        if label is None or (confident_only and row["confidence"] != "confident"):
            continue   # hybrids are neither FR-I nor FR-II
        sname = Path(row["file"]).stem
        raws.append(_Raw(sname, root / row["file"], label, f"{path.name} line {i} ({sname!r})"))
    return raws


def _frdeep(root: Path, survey: str, split: str | None) -> list[_Raw]:
    path = root / "frdeep" / "labels.csv"
    raws = []
    for i, row in enumerate(_csv_rows(path), 2):
        if row["survey"] != survey or (split and row["split"] != split) or row["fr_class"] not in _FR:
            continue
        sname = Path(row["file"]).stem
        raws.append(_Raw(sname, root / row["file"], _FR[row["fr_class"]], f"{path.name} line {i} ({sname!r})"))
    return raws


def image_geometry(path: Path, default_beam_arcsec: float | None = None):
    """A catalogue's image, as the truth rules need it: (celestial WCS, (ny, nx), mean pixel scale
    in arcsec, beam major axis FWHM in arcsec), read by the core's RadioImage (no pixels read)."""
    from glue_radiollava.core.image import RadioImage

    if not Path(path).is_file():
        raise RadioLlavaError(f"{path} not found; is --data-root the shared data folder?")
    image = RadioImage.open(path)
    try:
        if image.beam is None and default_beam_arcsec is None:
            raise RadioLlavaError(f"{path}: no beam in its header (BMAJ); the truth boxes need it")
        beam = image.beam.major_arcsec if image.beam is not None else default_beam_arcsec
        return image.wcs, image.shape, sum(image.pixel_scale_arcsec) / 2, beam
    finally:
        image.close()


def _rgz(root: Path) -> list[_Raw]:
    """RGZ sources in the shipped FIRST cutouts: a square cut around each source's box (B2).

    One source lies in two shipped cutouts (a MiraBest and an FRDEEP one) and is kept in both, so
    ids are ``rgz<catalogue id>_<file stem>``.
    """
    path = root / "catalogues" / "rgz_matches_in_shipped_first_cutouts.csv"
    raws = []
    for i, row in enumerate(_csv_rows(path), 2):
        x0, y0, x1, y1 = (float(row[k]) for k in ("bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax"))
        side = max(RGZ_MIN_CUTOUT, math.ceil(RGZ_MARGIN * max(x1 - x0, y1 - y0)))
        ix0, iy0, _, _ = index_box_around((x0 + x1) / 2, (y0 + y1) / 2, side, side)
        sname = f"rgz{row['rgz_catalog_id']}_{Path(row['file']).stem}"
        label = row["rgz_morph"].replace("_", "-")
        raws.append(_Raw(sname, root / row["file"], label, f"{path.name} line {i} ({sname!r})",
                         (ix0, iy0, ix0 + side, iy0 + side)))
    return raws


LOTSS_MOSAICS = ("P205+55-mosaic.fits", "P218+55-mosaic.fits")


def _lotss(root: Path) -> list[_Raw]:
    """The two LoTSS-DR1 mosaic cutouts with boxes from the catalogue's Gaussian fits (B7).

    Box: the bounding box of the fitted ellipse (Maj, Min, PA) grown to its 3σ isophote
    (σ = the island rms), never smaller than the FWHM ellipse. Class: EXTENDED when PyBDSF needed
    several Gaussians (S_Code M) or the deconvolved major axis exceeds the beam's; else COMPACT.
    """
    folder = root / "lotss_dr1"
    rows = _csv_rows(folder / "lotss_dr1_sources_near_cutouts.csv")
    raws = []
    for name in LOTSS_MOSAICS:
        path = folder / name
        wcs, (ny, nx), scale, beam = image_geometry(path, default_beam_arcsec=6.0)
        boxes = []
        for row in rows:
            x, y = (float(v) for v in radec_to_pixel(wcs, float(row["RA"]), float(row["DEC"])))
            if not (-0.5 <= x < nx - 0.5 and -0.5 <= y < ny - 0.5):
                continue
            snr = float(row["Peak_flux"]) / float(row["Isl_rms"])
            grow = max(1.0, math.sqrt(max(math.log(snr / LOTSS_ISOPHOTE_SIGMA), 0.0) / math.log(2)))
            a, b = (float(row["Maj"]) / 2 * grow / scale, float(row["Min"]) / 2 * grow / scale)
            pa = math.radians(float(row["PA"]))
            hx = math.hypot(a * math.sin(pa), b * math.cos(pa))
            hy = math.hypot(a * math.cos(pa), b * math.sin(pa))
            box = (max(x - hx, -0.5), max(y - hy, -0.5), min(x + hx, nx - 0.5), min(y + hy, ny - 0.5))
            extended = row["S_Code"] == "M" or float(row["DC_Maj"]) > beam
            boxes.append(TruthBox("EXTENDED" if extended else "COMPACT", box))
        sname = Path(name).stem
        raws.append(_Raw(sname, path, None, f"lotss {sname}", None, tuple(boxes)))
    return raws


# ------------------------------------------------------------------ writing reference JSON
def to_reference(ds: Dataset) -> dict:
    """A dataset as reference coarse-label JSON (plus 'cutout' and 'boxes' where it has them)."""
    records = []
    for s in ds.samples:
        if ds.bench.kind in ("single", "yesno"):
            label = s.truth[0]
        else:
            label = list(s.truth)
        rec = {"sname": s.id, "filepaths": [str(Path(s.path).resolve())], "label": label}
        if s.cutout is not None:
            rec["cutout"] = list(s.cutout)
        if ds.bench.code == DETECTION:
            rec["boxes"] = [{"label": b.label, "pixel_box": [round(v, 3) for v in b.box]} for b in s.boxes]
        records.append(rec)
    return {"task": ds.bench.code, "source": ds.origin, "data": records}


def write_reference(ds: Dataset, out: str | Path) -> Path:
    from glue_radiollava.core.files import atomic_write_text

    return atomic_write_text(out, json.dumps(to_reference(ds), indent=1) + "\n")


# ------------------------------------------------------------------ sample selection
def choose_shots(samples, k: int, seed: int):
    """``k`` examples, class-balanced (round robin over truths, seeded), and the rest."""
    if k <= 0:
        return [], list(samples)
    if k >= len(samples):
        raise RadioLlavaError(f"--shots {k} leaves no sample to evaluate (the set has {len(samples)}); "
                              "use fewer shots or --shots-from another set")
    chosen = pick_balanced(samples, k, seed)
    ids = {s.id for s in chosen}
    return chosen, [s for s in samples if s.id not in ids]


def pick_balanced(samples, k: int, seed: int):
    """``k`` of ``samples`` (at most all), round robin over their truths, seeded."""
    import random

    rng = random.Random(seed)
    groups: dict = {}
    for s in samples:
        groups.setdefault(s.truth, []).append(s)
    for g in groups.values():
        rng.shuffle(g)
    keys = sorted(groups)
    chosen = []
    k = min(k, len(samples))
    while len(chosen) < k:
        for key in keys:
            if groups[key] and len(chosen) < k:
                chosen.append(groups[key].pop())
    return chosen


def limit_samples(samples, limit: int | None, seed: int):
    """A seeded random ``limit`` of the samples, in their original order (all when None)."""
    import random

    if not limit or limit >= len(samples):
        return list(samples)
    keep = set(random.Random(seed).sample(range(len(samples)), int(limit)))
    return [s for i, s in enumerate(samples) if i in keep]
