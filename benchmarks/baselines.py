"""Baselines reported in the benchmark format (the paper's "pure vision" comparison).

- ``linear_probe``: the frozen vision tower of a model turns each rendered picture into one
  feature vector (the mean of its last hidden state over the patches); a scikit-learn logistic
  regression (standardised features) is trained on a train set, or cross-validated over the test
  set when none is given, and its predictions are scored like a model's (B1–B6).
- ``islands``: a classical source finder for B7: background and noise from sigma-clipped tiles,
  islands of 4-connected pixels above ``threshold`` local sigma holding a pixel above ``peak``
  sigma (the simulator's own truth rule), one box per island; an island is COMPACT when its
  flux-weighted size is at most 1.5× the beam's, else EXTENDED.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from glue_radiollava.core.embeddings import vision_features
from glue_radiollava.core.errors import RadioLlavaError

from . import data as bdata
from .runner import METRICS, PREDICTIONS, RUN, _jsonable, _versions, atomic_write_text, metrics_for, \
    render_sample, write_json
from .scoring import classification_metrics

COMPACT_SIZE = 1.5       # islands: compact when the flux-weighted major sigma ≤ this × the beam's sigma


# ------------------------------------------------------------------ shared writing
def _write_run(out: Path, records: list[dict], metrics: dict, info: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / PREDICTIONS, "".join(json.dumps(r, default=_jsonable) + "\n" for r in records))
    write_json(out / METRICS, metrics)
    write_json(out / RUN, {**info, "versions": _versions(),
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


# ------------------------------------------------------------------ islands (B7)
def local_noise(data: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Background and rms maps: sigma-clipped median and std in ``tile``-sized boxes, bilinearly spread."""
    from astropy.stats import sigma_clipped_stats

    ny, nx = data.shape
    gy, gx = max(1, round(ny / tile)), max(1, round(nx / tile))
    bkg = np.zeros((gy, gx))
    rms = np.zeros((gy, gx))
    for j in range(gy):
        for i in range(gx):
            block = data[j * ny // gy:(j + 1) * ny // gy, i * nx // gx:(i + 1) * nx // gx]
            block = block[np.isfinite(block)]
            if block.size < 10:
                bkg[j, i], rms[j, i] = np.nan, np.nan
                continue
            _, med, std = sigma_clipped_stats(block, sigma=3.0, maxiters=5)
            bkg[j, i], rms[j, i] = med, std
    for grid in (bkg, rms):                  # fill empty tiles with the median of the others
        bad = ~np.isfinite(grid) | (grid <= 0) if grid is rms else ~np.isfinite(grid)
        if bad.all():
            raise RadioLlavaError("the image has no usable pixels to estimate the noise")
        grid[bad] = np.nanmedian(grid[~bad])
    cy = (np.arange(gy) + 0.5) * ny / gy - 0.5       # tile centres
    cx = (np.arange(gx) + 0.5) * nx / gx - 0.5
    ys, xs = np.arange(ny), np.arange(nx)

    def spread(grid):                                 # bilinear between tile centres, flat beyond
        rows = np.array([np.interp(xs, cx, grid[j]) for j in range(gy)])
        return np.array([np.interp(ys, cy, rows[:, i]) for i in range(nx)]).T
    return spread(bkg), spread(rms)


def find_islands(data: np.ndarray, beam_px: float, threshold: float = 3.0, peak: float = 5.0,
                 tile: int | None = None) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Islands → (class, box) with box edges ``x0, y0, x1, y1`` in the array's pixels (pixel i spans i±0.5)."""
    from scipy import ndimage

    data = np.asarray(data, dtype=np.float64)
    tile = tile or max(32, int(round(10 * beam_px)))
    bkg, rms = local_noise(data, tile)
    finite = np.isfinite(data)
    snr = np.where(finite, (np.where(finite, data, 0.0) - bkg) / rms, 0.0)
    labels, n = ndimage.label(snr > threshold, structure=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    if n == 0:
        return []
    peaks = ndimage.maximum(snr, labels, index=np.arange(1, n + 1))
    beam_sigma = beam_px / (2 * np.sqrt(2 * np.log(2)))
    out = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None or peaks[k - 1] < peak:
            continue
        ys, xs = np.nonzero(labels[sl] == k)
        w = np.clip(snr[sl][ys, xs], 0, None)
        cov = np.cov(np.vstack([xs, ys]), aweights=w) if len(xs) > 2 else np.zeros((2, 2))
        major = float(np.sqrt(max(np.linalg.eigvalsh(cov).max(), 0.0)))
        cls = "COMPACT" if major <= COMPACT_SIZE * beam_sigma else "EXTENDED"
        box = (sl[1].start - 0.5, sl[0].start - 0.5, sl[1].stop - 0.5, sl[0].stop - 0.5)
        out.append((cls, box))
    return out


class IslandsDetector:
    """The island finder as a scan detector (``core.scan.scan``): boxes per tile, classed by size."""

    def __init__(self, beam_px: float, threshold: float = 3.0, peak: float = 5.0):
        self.beam_px, self.threshold, self.peak = float(beam_px), threshold, peak

    def describe(self) -> dict:
        return {"detector": "islands", "beam_px": self.beam_px, "threshold_sigma": self.threshold,
                "peak_sigma": self.peak}

    def detect(self, cutouts) -> list:
        from glue_radiollava.core.skyregions import pixel_box_to_sky

        out = []
        for cut in cutouts:
            found = []
            try:
                islands_found = find_islands(cut.data, self.beam_px, self.threshold, self.peak)
            except RadioLlavaError:          # a tile with too few pixels for a noise estimate: nothing found
                islands_found = []
            for cls, (x0, y0, x1, y1) in islands_found:
                box = (x0 + cut.x0, y0 + cut.y0, x1 + cut.x0, y1 + cut.y0)
                found.append(("islands", pixel_box_to_sky(cls, box, cut.image.wcs)))
            out.append((found, [{"task": "islands", "found": len(found)}]))
        return out


def islands(data: str, out: str | Path, threshold: float = 3.0, peak: float = 5.0, iou_threshold: float = 0.5,
            classes=None, seed: int = 0, n_boot: int = 1000, data_root=None, name: str | None = None) -> dict:
    """Run the island finder on a B7 set and write a run folder like ``bench run``."""
    from glue_radiollava.core.image import RadioImage

    out = _fresh(out)
    ds = bdata.load_one(data, bdata.DETECTION, data_root, classes)
    bench = ds.bench
    records = []
    t0 = time.perf_counter()
    for s in ds.samples:
        t1 = time.perf_counter()
        image = RadioImage.open(s.path)
        try:
            ny, nx = image.shape
            x0, y0, x1, y1 = s.cutout or (0, 0, nx, ny)
            cut = image.cutout_pixels(x0, y0, x1, y1)
            sx, sy = image.pixel_scale_arcsec
            beam_px = (image.beam.major_arcsec / ((sx + sy) / 2)) if image.beam else 2.5
        finally:
            image.close()
        found = find_islands(cut.data, beam_px, threshold, peak)
        answers = {}
        for cls in bench.labels:
            boxes = [[round(b[0] + cut.x0, 3), round(b[1] + cut.y0, 3), round(b[2] + cut.x0, 3),
                      round(b[3] + cut.y0, 3)] for c, b in found if c == cls]
            answers[cls] = {"answer": f"{len(boxes)} islands", "parsed": True, "problem": None, "boxes": boxes,
                            "flagged": 0, "new_tokens": 0}
        records.append({"task": bench.code, "id": s.id, "file": s.path,
                        "cutout": list(s.cutout) if s.cutout else None, "truth": list(s.truth),
                        "truth_boxes": [[b.label, *[round(v, 3) for v in b.box]] for b in s.boxes],
                        "mode": "islands", "answers": answers, "parsed": True, "new_tokens": 0,
                        "beam_px": round(beam_px, 3), "seconds": round(time.perf_counter() - t1, 5)})
    seconds = time.perf_counter() - t0
    m = metrics_for(bench, records, iou_threshold, n_boot, seed)
    m["mode"] = "islands"
    m["throughput"] = {"images": len(records), "seconds": round(seconds, 4),
                       "images_per_s": round(len(records) / seconds, 4) if seconds else None}
    m["provenance"] = {"baseline": "islands", "threshold_sigma": threshold, "peak_sigma": peak,
                       "connectivity": 4, "noise": "sigma-clipped median/std in tiles of max(32, 10 beams) px",
                       "compact_rule": f"flux-weighted major sigma <= {COMPACT_SIZE} x beam sigma",
                       "data": data, "origin": ds.origin, "data_notes": ds.notes, "seed": seed}
    metrics = {bench.code: m}
    _write_run(Path(out), records, metrics, {"name": name or "islands", "baseline": "islands", "tasks": [bench.code],
                                             "data": data, "threshold": threshold, "peak": peak,
                                             "iou": iou_threshold})
    return metrics
