"""Metrics: per-class precision/recall/F1, macro average ("AVG"), accuracy, confusion matrices,
bootstrap intervals, and B7 box matching. The counting is scikit-learn's.

Honest scoring (the reference code's flaw fixed): every answer that could not be parsed stays in
the metrics as a wrong answer.
- single-label and yes/no: the prediction is ``UNPARSED``, a class of its own: a miss for the
  true class, a false positive for none;
- multi-label (B1): each per-label decision counts as wrong (the opposite of the truth), so it
  costs recall on the labels present, precision on the others, and a whole Hamming row;
- detection (B7): no boxes (every true box of that class and picture is missed); a box that is
  not usable (out of range, NaN, zero size) is a false positive.

The macro average runs over the task's labels present in the truth or in a prediction
(scikit-learn's default label set), so a class absent from a small set does not count as F1 = 0,
while predicting a class that is not there does.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .tasks import UNPARSED, BenchTask

NONE_BOX = "(none)"   # the other side of an unmatched box in the B7 confusion matrix


# ------------------------------------------------------------------ classification
def _single_arrays(truths, preds, parsed):
    y_true = [t[0] for t in truths]
    y_pred = [p[0] if ok and p else UNPARSED for p, ok in zip(preds, parsed)]
    return np.array(y_true, dtype=object), np.array(y_pred, dtype=object)


def _multi_arrays(labels, truths, preds, parsed):
    index = {lab: i for i, lab in enumerate(labels)}
    y_true = np.zeros((len(truths), len(labels)), dtype=int)
    y_pred = np.zeros_like(y_true)
    for r, (t, p, ok) in enumerate(zip(truths, preds, parsed)):
        for lab in t:
            y_true[r, index[lab]] = 1
        if ok:
            for lab in p:
                y_pred[r, index[lab]] = 1
        else:
            y_pred[r] = 1 - y_true[r]      # every decision wrong
    return y_true, y_pred


def _prf(bench: BenchTask, y_true, y_pred):
    """Per-class P, R, F1, support (all task labels) and the labels the macro average runs over."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = list(bench.labels)
    if bench.kind == "multi":
        cols = list(range(len(labels)))
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=cols, average=None, zero_division=0)
        seen = (y_true.sum(axis=0) + y_pred.sum(axis=0)) > 0
    else:
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
        present = set(y_true.tolist()) | set(y_pred.tolist())
        seen = np.array([lab in present for lab in labels])
    return p, r, f, s, seen


def _accuracy(y_true, y_pred) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, y_pred))


def _macro(values, seen) -> float:
    return float(np.mean(values[seen])) if seen.any() else 0.0


def classification_metrics(bench: BenchTask, truths: Sequence[tuple], preds: Sequence[tuple],
                           parsed: Sequence[bool], n_boot: int = 1000, seed: int = 0) -> dict:
    """Metrics of a B1–B6 run: ``truths``/``preds`` are label tuples, ``parsed`` False for unparsed."""
    from sklearn.metrics import confusion_matrix, hamming_loss, multilabel_confusion_matrix

    n = len(truths)
    labels = list(bench.labels)
    if bench.kind == "multi":
        y_true, y_pred = _multi_arrays(labels, truths, preds, parsed)
    else:
        y_true, y_pred = _single_arrays(truths, preds, parsed)
    out: dict = {"task": bench.code, "title": bench.title, "kind": bench.kind, "labels": labels, "n": n,
                 "unparsed": int(sum(not ok for ok in parsed))}
    out["unparsed_fraction"] = round(out["unparsed"] / n, 6) if n else 0.0
    if n == 0:
        return out
    p, r, f, s, seen = _prf(bench, y_true, y_pred)
    out["per_class"] = {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                              "support": int(s[i])} for i, lab in enumerate(labels)}
    out["macro_labels"] = [lab for lab, ok in zip(labels, seen) if ok]
    out["macro_precision"], out["macro_recall"] = _macro(p, seen), _macro(r, seen)
    out["macro_f1"] = _macro(f, seen)
    out["accuracy"] = _accuracy(y_true, y_pred)
    if bench.kind == "multi":
        out["subset_accuracy"] = out["accuracy"]
        out["hamming_loss"] = float(hamming_loss(y_true, y_pred))
        mcm = multilabel_confusion_matrix(y_true, y_pred, labels=list(range(len(labels))))
        out["confusion_matrix"] = {"layout": "per label [[TN, FP], [FN, TP]]",
                                   "labels": labels, "matrix": mcm.tolist()}
    else:
        cm_labels = labels + [UNPARSED]
        cm = confusion_matrix(y_true, y_pred, labels=cm_labels)
        out["confusion_matrix"] = {"layout": "rows: truth, columns: prediction", "labels": cm_labels,
                                   "matrix": cm[:len(labels)].tolist()}
    if n_boot:
        def stats(idx):
            p_, r_, f_, s_, seen_ = _prf(bench, y_true[idx], y_pred[idx])
            return _macro(f_, seen_), _accuracy(y_true[idx], y_pred[idx]), f_
        _add_intervals(out, n, stats, n_boot, seed, labels)
    return out


def _add_intervals(out: dict, n: int, stats, n_boot: int, seed: int, labels) -> None:
    """95% percentile bootstrap intervals of macro F1, accuracy and each class's F1 (samples resampled)."""
    rng = np.random.default_rng(seed)
    macro, acc, per = [], [], []
    for _ in range(int(n_boot)):
        idx = rng.integers(0, n, n)
        m, a, f = stats(idx)
        macro.append(m)
        acc.append(a)
        per.append(f)
    ci = lambda v: [float(x) for x in np.percentile(np.asarray(v, float), [2.5, 97.5], axis=0).round(6)]  # noqa: E731
    out["macro_f1_ci"], out["accuracy_ci"] = ci(macro), ci(acc)
    per = np.asarray(per, float)
    for i, lab in enumerate(labels):
        out["per_class"][lab]["f1_ci"] = ci(per[:, i])
    out["bootstrap"] = {"resamples": int(n_boot), "confidence": 0.95, "seed": int(seed), "unit": "sample"}


# ------------------------------------------------------------------ detection (B7)
def iou(a, b) -> float:
    """Intersection over union of two boxes ``(x0, y0, x1, y1)``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(pred_boxes, true_boxes, threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching, highest IoU first; pairs (pred, truth, iou) with iou ≥ threshold."""
    pairs = sorted(((iou(p, t), i, j) for i, p in enumerate(pred_boxes) for j, t in enumerate(true_boxes)),
                   reverse=True)
    used_p, used_t, out = set(), set(), []
    for v, i, j in pairs:
        if v < threshold or v <= 0:
            break
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        out.append((i, j, v))
    return out


def detection_counts(pred_boxes, flagged: int, true_boxes, threshold: float) -> dict:
    """TP/FP/FN of one picture and class; ``flagged`` unusable boxes count as false positives."""
    m = match(pred_boxes, true_boxes, threshold)
    return {"tp": len(m), "fp": len(pred_boxes) - len(m) + int(flagged), "fn": len(true_boxes) - len(m),
            "ious": [round(v, 4) for _, _, v in m]}


def _detection_arrays(classes, rows):
    """rows: per picture {class: counts} → y_true/y_pred lists (TP: c/c, FP: none/c, FN: c/none)."""
    y_true, y_pred = [], []
    for row in rows:
        for c in classes:
            k = row.get(c)
            if not k:
                continue
            y_true += [c] * k["tp"] + [NONE_BOX] * k["fp"] + [c] * k["fn"]
            y_pred += [c] * k["tp"] + [c] * k["fp"] + [NONE_BOX] * k["fn"]
    return np.array(y_true, dtype=object), np.array(y_pred, dtype=object)


def detection_metrics(bench: BenchTask, rows: Sequence[dict], unparsed: int, threshold: float,
                      n_boot: int = 1000, seed: int = 0) -> dict:
    """Metrics of a B7 run. ``rows``: one dict per picture, class → detection_counts(...)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    classes = list(bench.labels)
    n = len(rows)
    questions = n * len(classes)
    out: dict = {"task": bench.code, "title": bench.title, "kind": "boxes", "labels": classes, "n": n,
                 "questions": questions, "unparsed": int(unparsed),
                 "unparsed_fraction": round(unparsed / questions, 6) if questions else 0.0,
                 "iou_threshold": threshold}
    if n == 0:
        return out

    def prf(sub):
        y_true, y_pred = _detection_arrays(classes, sub)
        if len(y_true) == 0:
            z = np.zeros(len(classes))
            return z, z, z, z.astype(int), np.zeros(len(classes), bool), y_true, y_pred
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, average=None, zero_division=0)
        present = set(y_true.tolist()) | set(y_pred.tolist())
        seen = np.array([c in present for c in classes])
        return p, r, f, s, seen, y_true, y_pred

    p, r, f, s, seen, y_true, y_pred = prf(rows)
    totals = {c: {k: sum(row[c][k] for row in rows if c in row) for k in ("tp", "fp", "fn")} for c in classes}
    out["per_class"] = {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(s[i]), **totals[c]} for i, c in enumerate(classes)}
    out["macro_labels"] = [c for c, ok in zip(classes, seen) if ok]
    out["macro_precision"], out["macro_recall"], out["macro_f1"] = _macro(p, seen), _macro(r, seen), _macro(f, seen)
    out["accuracy"] = _accuracy(y_true, y_pred) if len(y_true) else 0.0
    out["accuracy_definition"] = "TP / (TP + FP + FN): matched boxes over all boxes (no true negatives)"
    cm_labels = classes + [NONE_BOX]
    out["confusion_matrix"] = {"layout": "rows: truth, columns: prediction; (none): unmatched",
                               "labels": cm_labels,
                               "matrix": confusion_matrix(y_true, y_pred, labels=cm_labels).tolist()
                               if len(y_true) else []}
    if n_boot:
        rows = list(rows)

        def stats(idx):
            p_, r_, f_, s_, seen_, yt, yp = prf([rows[i] for i in idx])
            return _macro(f_, seen_), (_accuracy(yt, yp) if len(yt) else 0.0), f_
        _add_intervals(out, n, stats, n_boot, seed, classes)
        out["bootstrap"]["unit"] = "picture"
    return out


# ------------------------------------------------------------------ metrics from records
def metrics_for(bench: BenchTask, records: list[dict], iou: float, n_boot: int, seed: int) -> dict:
    if bench.kind == "boxes":
        rows, unparsed = [], 0
        for rec in records:
            row = {}
            truth = rec.get("truth_boxes", [])
            for cls in bench.labels:
                ans = rec["answers"].get(cls, {"boxes": [], "flagged": 0, "parsed": False})
                unparsed += not ans["parsed"]
                true_boxes = [t[1:] for t in truth if t[0] == cls]
                pred = ans["boxes"] if ans["parsed"] else []
                row[cls] = detection_counts(pred, ans.get("flagged", 0) if ans["parsed"] else 0, true_boxes, iou)
            rows.append(row)
        return detection_metrics(bench, rows, unparsed, iou, n_boot, seed)
    truths = [tuple(r["truth"]) for r in records]
    preds = [tuple(r.get("pred") or ()) for r in records]
    parsed = [bool(r.get("parsed")) for r in records]
    return classification_metrics(bench, truths, preds, parsed, n_boot, seed)


def throughput(records: list[dict], processes: int, batch_size: int) -> dict:
    n = len(records)
    seconds = sum(r.get("seconds", 0.0) for r in records)
    model_s = sum(r.get("model_s", 0.0) for r in records)
    tokens = sum(r.get("new_tokens", 0) or 0 for r in records)
    return {"images": n, "seconds": round(seconds, 4),
            "images_per_s": round(n / seconds * processes, 4) if seconds else None,
            "model_images_per_s": round(n / model_s * processes, 4) if model_s else None,
            "new_tokens": int(tokens), "tokens_per_s": round(tokens / model_s * processes, 3) if model_s and tokens else None,
            "batch_size": batch_size, "processes": processes,
            "note": "seconds: wall time with rendering overlapping the model, summed over processes; "
                    "rates are for all processes together"}
