"""Baselines reported in the benchmark format (the paper's "pure vision" comparison).

- ``linear_probe``: the frozen vision tower of a model turns each rendered picture into one
  feature vector (the mean of its last hidden state over the patches); a scikit-learn logistic
  regression (standardised features) is trained on a train set, or cross-validated over the test
  set when none is given, and its predictions are scored like a model's (B1–B6).
- source finders for B7 (``glue_radiollava.core.finders``): ``islands`` (written here, the
  simulator's own truth rule), ``photutils`` (segmentation), ``aegean`` (AegeanTools) and
  ``pybdsf`` (bdsf); each turns every image into COMPACT/EXTENDED boxes, scored like a model's
  (boxes per class, IoU matching, per-class F1) into the same run folder. The last three are the
  optional ``finders`` extra.

Besides the ``--data`` sets of ``bench run``, the finders take two published catalogues of the
shared data's ``misc/`` folder (``CATALOGUE_SETS``): ``pybdsf-test`` (PyBDSF's test image and its
43-source PyBDSF catalogue) and ``parkes`` (a Parkes 1.4 GHz field and its 51 Aegean components).
Their truth is written as reference JSON (``truth.json``) into the run folder, so ``bench run
--data RUN/truth.json`` asks a model the same boxes.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from glue_radiollava.core.embeddings import vision_features
from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.files import atomic_write_text
from glue_radiollava.core.finders import FinderDetector, IslandsFinder, PixelBeam, ellipse_box, find_in_image, make_finder
from glue_radiollava.core.transform import radec_to_pixel

from . import data as bdata
from .records import METRICS, PREDICTIONS, RUN, versions, write_json, write_predictions
from .runner import render_sample
from .scoring import classification_metrics, metrics_for



# ------------------------------------------------------------------ shared writing
def _write_run(out: Path, records: list[dict], metrics: dict, info: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out, records)
    write_json(out / METRICS, metrics)
    write_json(out / RUN, {**info, "versions": versions(),
                           "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def _fresh(out: str | Path) -> Path:
    out = Path(out)
    if out.is_dir() and (out / PREDICTIONS).exists():
        raise RadioLlavaError(f"{out} already holds a run; choose another --out")
    return out


# ------------------------------------------------------------------ linear probe
def _classifier(seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, random_state=seed))


def _fit_predict(X_tr, y_tr, X_te, labels, seed) -> np.ndarray:
    """Probabilities [n_test, n_labels]; a class missing from the train set gets probability 0."""
    present = sorted(set(y_tr))
    proba = np.zeros((len(X_te), len(labels)))
    if len(present) == 1:
        proba[:, labels.index(present[0])] = 1.0
        return proba
    clf = _classifier(seed).fit(X_tr, y_tr)
    for j, cls in enumerate(clf.classes_):
        proba[:, labels.index(cls)] = clf.predict_proba(X_te)[:, j]
    return proba


def _probe_predict(bench, X_tr, T_tr, X_te, folds: int | None, seed: int) -> np.ndarray:
    """Per-label probabilities for the test set (cross-validated over it when ``folds``)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    labels = list(bench.labels)

    def fit(xa, ta, xb):
        if bench.kind == "multi":                  # one yes/no classifier per label
            out = np.zeros((len(xb), len(labels)))
            for j, lab in enumerate(labels):
                y = np.array([lab in t for t in ta])
                out[:, j] = _fit_predict(xa, y, xb, [False, True], seed)[:, 1]
            return out
        return _fit_predict(xa, [t[0] for t in ta], xb, labels, seed)

    if folds is None:
        return fit(X_tr, T_tr, X_te)
    n = len(X_te)
    keys = [t[0] if bench.kind != "multi" else "" for t in T_tr]
    smallest = min(keys.count(k) for k in set(keys))
    if bench.kind != "multi" and smallest >= 2:
        splitter = StratifiedKFold(n_splits=max(2, min(folds, smallest)), shuffle=True, random_state=seed)
        splits = splitter.split(X_te, keys)
    else:
        splitter = KFold(n_splits=max(2, min(folds, n)), shuffle=True, random_state=seed)
        splits = splitter.split(X_te)
    out = np.zeros((n, len(labels)))
    for tr, te in splits:
        out[te] = fit(X_te[tr], [T_tr[i] for i in tr], X_te[te])
    return out


def linear_probe(codes: list[str], data: str, out: str | Path, train: str | None = None, folds: int = 5,
                 model: str = "nano", adapter=None, quantize=None, dtype=None, device=None,
                 batch_size: int = 16, seed: int = 0, n_boot: int = 1000, data_root=None,
                 name: str | None = None) -> dict:
    """Frozen vision features + logistic regression on B1–B6; writes a run folder like ``bench run``."""
    from glue_radiollava.core.assistant import Assistant
    from glue_radiollava.core.models import ModelSpec

    out = _fresh(out)
    if any(c == bdata.DETECTION for c in codes):
        raise RadioLlavaError("the linear probe classifies pictures; for B7 use `radiollava bench baseline islands`")
    tests = bdata.load(data, codes, data_root)
    trains = {c: bdata.load_one(train, c, data_root) for c in codes} if train else {}
    assistant = Assistant(ModelSpec(model, adapter, quantize, dtype, device))
    metrics, records = {}, []
    feature_cache: dict[tuple, np.ndarray] = {}
    what = {}

    def features(samples):
        todo = [s for s in samples if (s.path, s.cutout) not in feature_cache]
        if todo:
            views = [render_sample(assistant, s) for s in todo]
            X, what["features"] = vision_features(assistant, views, batch_size)
            for s, x in zip(todo, X):
                feature_cache[(s.path, s.cutout)] = x
        return np.stack([feature_cache[(s.path, s.cutout)] for s in samples])

    for ds in tests:
        bench = ds.bench
        t0 = time.perf_counter()
        X_te = features(ds.samples)
        if train:
            tr = trains[bench.code].samples
            X_tr, T_tr, k = features(tr), [s.truth for s in tr], None
        else:
            X_tr, T_tr, k = X_te, [s.truth for s in ds.samples], folds
        proba = _probe_predict(bench, X_tr, T_tr, X_te, k, seed)
        seconds = time.perf_counter() - t0
        truths, preds = [], []
        for s, p in zip(ds.samples, proba):
            if bench.kind == "multi":
                pred = tuple(lab for lab, v in zip(bench.labels, p) if v > 0.5)
            else:
                pred = (bench.labels[int(np.argmax(p))],)
            truths.append(s.truth)
            preds.append(pred)
            records.append({"task": bench.code, "id": s.id, "file": s.path,
                            "cutout": list(s.cutout) if s.cutout else None, "truth": list(s.truth),
                            "mode": "linear-probe", "answer": ", ".join(pred) or "NONE", "pred": list(pred),
                            "parsed": True, "problem": None,
                            "probs": {lab: round(float(v), 6) for lab, v in zip(bench.labels, p)},
                            "seconds": round(seconds / len(ds), 5)})
        m = classification_metrics(bench, truths, preds, [True] * len(truths), n_boot, seed)
        m["mode"] = "linear-probe"
        m["throughput"] = {"images": len(ds), "seconds": round(seconds, 4),
                           "images_per_s": round(len(ds) / seconds, 4) if seconds else None}
        m["provenance"] = {"baseline": "linear-probe", "model": assistant.loaded.provenance(),
                           "preprocessing": assistant.profile.to_dict(), "features": what.get("features"),
                           "classifier": "StandardScaler + LogisticRegression (scikit-learn)"
                                         + (", one per label" if bench.kind == "multi" else ""),
                           "train": train or f"{folds}-fold cross-validation over the test set",
                           "n_train": len(trains[bench.code]) if train else None,
                           "data": data, "origin": ds.origin, "seed": seed}
        metrics[bench.code] = m
    _write_run(out, records, metrics, {"name": name or f"linear probe ({Path(str(model).rstrip('/')).name})",
                                       "baseline": "linear-probe", "tasks": list(metrics), "data": data,
                                       "train": train, "model": assistant.loaded.provenance()})
    return metrics


# ------------------------------------------------------------------ source finders (B7)
class IslandsDetector(FinderDetector):
    """The island finder as a scan detector (``core.scan.scan``) with a fixed beam in pixels."""

    def __init__(self, beam_px: float, threshold: float = 3.0, peak: float = 5.0):
        super().__init__(IslandsFinder(threshold, peak), PixelBeam(float(beam_px), float(beam_px)))
        self.beam_px = float(beam_px)


CATALOGUE_SETS = {
    "pybdsf-test": ("misc/pybdsf_test_ch0_I.fits", "misc/pybdsf_test.srl",
                    "PyBDSF test image (129x129, 21\"/px) and its PyBDSF source list (43 sources)"),
    "parkes": ("misc/parkes_1904-66_SIN.fits", "misc/parkes_1904-66_aegean_comp.fits",
               "Parkes 1.4 GHz field 1904-66 (192x192, 4'/px) and its Aegean component catalogue (51)"),
}
CATALOGUE_ISOPHOTE_SIGMA = 3.0   # truth boxes of the published catalogues: the Gaussian's 3σ-isophote box


def _srl_rows(path: Path) -> list[dict]:
    """A PyBDSF ``.srl`` ASCII source list → rows (the ``# Source_id …`` line names the columns)."""
    names, rows = None, []
    for line in path.read_text().splitlines():
        if line.startswith("# Source_id"):
            names = line[2:].split()
        elif names and line.strip() and not line.startswith("#"):
            rows.append(dict(zip(names, line.split())))
    if not names:
        raise RadioLlavaError(f"{path}: not a PyBDSF source list (no '# Source_id' header line)")
    return rows


def catalogue_reference(name: str, root=None) -> dict:
    """B7 reference JSON (``bench data`` layout) for a published catalogue of ``misc/``.

    Each source's box is the bounding box of its fitted ellipse grown to the 3σ isophote of its
    local rms (``core.finders.ellipse_box``; the rule ``lotss`` uses). Class: EXTENDED when PyBDSF
    needed several Gaussians (S_Code M) or the deconvolved major axis exceeds the beam's (PyBDSF);
    for Aegean, when the island holds several components or sqrt(a² − psf_a²) exceeds the beam.
    """
    import math

    from astropy.table import Table

    from glue_radiollava.core.files import data_root

    if name not in CATALOGUE_SETS:
        raise RadioLlavaError(f"unknown catalogue set {name!r}; choose one of {', '.join(CATALOGUE_SETS)}")
    image_rel, cat_rel, text = CATALOGUE_SETS[name]
    base = data_root(root)
    image, cat = base / image_rel, base / cat_rel
    for p in (image, cat):
        if not p.is_file():
            raise RadioLlavaError(f"{p} not found; is --data-root the shared data folder?")
    wcs, (ny, nx), scale, beam = bdata.image_geometry(image)
    boxes = []
    if name == "pybdsf-test":        # Maj/Min/DC_Maj in degrees, PA east of north
        for r in _srl_rows(cat):
            x, y = (float(v) for v in radec_to_pixel(wcs, float(r["RA"]), float(r["DEC"])))
            snr = float(r["Peak_flux"]) / float(r["Isl_rms"])
            box = ellipse_box(x, y, float(r["Maj"]) * 3600 / scale, float(r["Min"]) * 3600 / scale,
                              float(r["PA"]), snr, CATALOGUE_ISOPHOTE_SIGMA, (ny, nx))
            extended = r["S_Code"] == "M" or float(r["DC_Maj"]) * 3600 > beam
            boxes.append(("EXTENDED" if extended else "COMPACT", box))
    else:                            # Aegean components: a, b, psf_a in arcsec
        t = Table.read(cat)
        per_island: dict[int, int] = {}
        for r in t:
            per_island[int(r["island"])] = per_island.get(int(r["island"]), 0) + 1
        for r in t:
            x, y = (float(v) for v in radec_to_pixel(wcs, float(r["ra"]), float(r["dec"])))
            snr = float(r["peak_flux"]) / float(r["local_rms"])
            box = ellipse_box(x, y, float(r["a"]) / scale, float(r["b"]) / scale, float(r["pa"]), snr,
                              CATALOGUE_ISOPHOTE_SIGMA, (ny, nx))
            dc = math.sqrt(max(float(r["a"]) ** 2 - float(r["psf_a"]) ** 2, 0.0))
            extended = per_island[int(r["island"])] > 1 or dc > beam
            boxes.append(("EXTENDED" if extended else "COMPACT", box))
    boxes = [(c, b) for c, b in boxes if b[2] > b[0] and b[3] > b[1]]
    labels = sorted({c for c, _ in boxes})
    return {"task": bdata.DETECTION, "source": f"{text}: {cat}",
            "data": [{"sname": name, "filepaths": [str(image)], "label": labels,
                      "boxes": [{"label": c, "pixel_box": [round(v, 3) for v in b]} for c, b in boxes]}]}


def _load_detection(data: str, out: Path, data_root, classes):
    """The B7 dataset of ``--data``; a catalogue set is first written to ``out/truth.json``."""
    if data in CATALOGUE_SETS and not Path(data).exists():
        out.mkdir(parents=True, exist_ok=True)
        ref = catalogue_reference(data, data_root)
        truth = atomic_write_text(out / TRUTH, json.dumps(ref, indent=1) + "\n")
        ds = bdata.load_one(str(truth), bdata.DETECTION, data_root, classes)
        return ds, ref["source"]
    ds = bdata.load_one(data, bdata.DETECTION, data_root, classes)
    return ds, ds.origin


TRUTH = "truth.json"


def finder_baseline(finder: str, data: str, out: str | Path, threshold: float = 3.0, peak: float = 5.0,
                    iou_threshold: float = 0.5, classes=None, seed: int = 0, n_boot: int = 1000,
                    data_root=None, name: str | None = None, **options) -> dict:
    """Run a source finder (``core.finders.FINDERS``) on a B7 set and write a run folder like ``bench run``."""
    from glue_radiollava.core.image import RadioImage

    out = _fresh(out)
    detector = make_finder(finder, threshold, peak, **options)   # a missing package says how to install
    ds, origin = _load_detection(data, Path(out), data_root, classes)
    bench = ds.bench
    records = []
    t0 = time.perf_counter()
    for s in ds.samples:
        t1 = time.perf_counter()
        image = RadioImage.open(s.path)
        try:
            ny, nx = image.shape
            x0, y0, x1, y1 = s.cutout or (0, 0, nx, ny)
            found, beam = find_in_image(detector, image, x0, y0, x1, y1)
        finally:
            image.close()
        answers = {}
        for cls in bench.labels:
            boxes = [[round(v, 3) for v in f.box] for f in found if f.label == cls]
            answers[cls] = {"answer": f"{len(boxes)} sources", "parsed": True, "problem": None, "boxes": boxes,
                            "flagged": 0, "new_tokens": 0}
        records.append({"task": bench.code, "id": s.id, "file": s.path,
                        "cutout": list(s.cutout) if s.cutout else None, "truth": list(s.truth),
                        "truth_boxes": [[b.label, *[round(v, 3) for v in b.box]] for b in s.boxes],
                        "mode": detector.name, "answers": answers, "parsed": True, "new_tokens": 0,
                        "beam_px": round(beam.major, 3), "found": len(found),
                        "seconds": round(time.perf_counter() - t1, 5)})
    seconds = time.perf_counter() - t0
    m = metrics_for(bench, records, iou_threshold, n_boot, seed)
    m["mode"] = detector.name
    m["throughput"] = {"images": len(records), "seconds": round(seconds, 4),
                       "images_per_s": round(len(records) / seconds, 4) if seconds else None}
    m["provenance"] = {"baseline": detector.name, **detector.describe(), "data": data, "origin": origin,
                       "data_notes": ds.notes, "seed": seed}
    if detector.name == "pybdsf" and data == "lotss":
        m["provenance"]["data_notes"] = list(ds.notes) + [
            "the lotss truth is the LoTSS-DR1 PyBDSF catalogue: PyBDSF is graded against itself here"]
    if detector.name == "islands" and Path(str(data)).is_dir():
        m["provenance"]["data_notes"] = list(ds.notes) + [
            "the simulator's truth uses the islands rule: islands is partly graded against itself here"]
    metrics = {bench.code: m}
    _write_run(Path(out), records, metrics, {"name": name or detector.name, "baseline": detector.name,
                                             "tasks": [bench.code], "data": data, "threshold": threshold,
                                             "peak": peak, "iou": iou_threshold, "detector": detector.describe()})
    return metrics


def islands(data: str, out: str | Path, threshold: float = 3.0, peak: float = 5.0, iou_threshold: float = 0.5,
            classes=None, seed: int = 0, n_boot: int = 1000, data_root=None, name: str | None = None) -> dict:
    """The island finder on a B7 set (``finder_baseline('islands', …)``)."""
    return finder_baseline("islands", data, out, threshold, peak, iou_threshold, classes, seed, n_boot,
                           data_root, name)
