"""Evaluation metrics for detection streams and classification (numpy arrays in, Python numbers out).

Detection (paper §3.3) is judged three ways, from coarse to strict:

* ``count_accuracy`` – each (stream, class) pair is right when the output neuron fired exactly as many
  spike clusters as the class occurs in the stream (this is what the loss trains);
* ``stream_accuracy`` – a stream is right when every class count in it is right;
* ``event_f1`` – timing: a cluster *detects* an event of its own class when the whole cluster lies
  inside the event span (widened by a tolerance). TP = events detected, FN = events missed,
  FP = clusters that lie inside no event of their class.
* ``event_f1(..., strict=True)`` – the same, one to one: a cluster matches at most one event and an
  event at most one cluster, so a detection split into two clusters inside one event counts its
  second cluster as a false positive (reported beside the lenient figure as ``event_f1_strict``).

Clusters come from ``stca_engine.clusters.cluster_spans`` (ISI < T_in joins, a gap >= T_in splits).
Classification uses accuracy, a confusion matrix and macro-averaged precision / recall / F1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..clusters import cluster_spans
from .types import Event


def _as_counts(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be [streams, classes], got shape {a.shape}")
    return a.astype(np.int64)


def count_accuracy(pred_counts, true_counts) -> float:
    """Fraction of (stream, class) pairs whose predicted cluster count equals the true count."""
    p, t = _as_counts(pred_counts, "pred_counts"), _as_counts(true_counts, "true_counts")
    if p.shape != t.shape:
        raise ValueError(f"pred_counts {p.shape} and true_counts {t.shape} differ in shape")
    if p.size == 0:
        return float("nan")
    return float(np.mean(p == t))


def stream_accuracy(pred_counts, true_counts) -> float:
    """Fraction of streams in which every class count is right."""
    p, t = _as_counts(pred_counts, "pred_counts"), _as_counts(true_counts, "true_counts")
    if p.shape != t.shape:
        raise ValueError(f"pred_counts {p.shape} and true_counts {t.shape} differ in shape")
    if p.shape[0] == 0:
        return float("nan")
    return float(np.mean(np.all(p == t, axis=1)))


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def event_f1(
    output_spikes: Sequence[np.ndarray],
    events: Sequence[Sequence[Event]],
    t_in_steps: int,
    tolerance_steps: int = 0,
    strict: bool = False,
) -> dict:
    """Event-level precision / recall / F1 over a set of streams.

    ``output_spikes[s]`` is the ``[T, C]`` 0/1 output raster of stream ``s`` and ``events[s]`` its
    events (onset inclusive, offset exclusive, in steps). A cluster spanning steps ``[a, b]``
    detects event ``e`` of the same class when ``a >= e.onset - tol`` and ``b <= e.offset - 1 + tol``.
    Precision = TP / (TP + FP) and recall = TP / (TP + FN), both 0 when undefined; when there are
    neither events nor clusters all three scores are 1 (nothing to find, nothing falsely found).
    ``strict``: each cluster matches at most one event (the earliest one still unmatched that holds it)
    and each event at most one cluster; a further cluster inside an already matched event is a false
    positive (a split detection). Returns ``{"tp", "fp", "fn", "precision", "recall", "f1"}``.
    """
    if len(output_spikes) != len(events):
        raise ValueError(f"{len(output_spikes)} output rasters but {len(events)} event lists")
    if t_in_steps < 1:
        raise ValueError(f"t_in_steps must be >= 1, got {t_in_steps}")
    if tolerance_steps < 0:
        raise ValueError(f"tolerance_steps must be >= 0, got {tolerance_steps}")
    tol = int(tolerance_steps)
    tp = fp = fn = 0
    for raster, evs in zip(output_spikes, events):
        raster = np.asarray(raster)
        if raster.ndim != 2:
            raise ValueError(f"each output raster must be [T, C], got shape {raster.shape}")
        n_classes = raster.shape[1]
        for ev in evs:
            if not 0 <= ev.class_index < n_classes:
                raise ValueError(f"event class {ev.class_index} outside 0..{n_classes - 1}")
        for c in range(n_classes):
            spans = cluster_spans(np.flatnonzero(raster[:, c]), t_in_steps)
            class_events = [(ev.onset_step - tol, ev.offset_step - 1 + tol) for ev in evs if ev.class_index == c]
            detected = [False] * len(class_events)
            for a, b, _ in spans:
                matched = False
                for j, (lo, hi) in enumerate(class_events):
                    if a >= lo and b <= hi and not (strict and detected[j]):
                        detected[j] = True
                        matched = True
                        if strict:
                            break
                if not matched:
                    fp += 1
            tp += sum(detected)
            fn += len(detected) - sum(detected)
    if tp + fp + fn == 0:
        precision = recall = f1 = 1.0
    else:
        precision = _ratio(tp, tp + fp)
        recall = _ratio(tp, tp + fn)
        f1 = _ratio(2 * precision * recall, precision + recall)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def _as_labels(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {a.shape}")
    return a.astype(np.int64)


def accuracy(pred, true) -> float:
    """Fraction of samples whose predicted class is the true class."""
    p, t = _as_labels(pred, "pred"), _as_labels(true, "true")
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and true {t.shape} differ in shape")
    if p.size == 0:
        return float("nan")
    return float(np.mean(p == t))


def confusion_matrix(pred, true, n_classes: int) -> np.ndarray:
    """``[n_classes, n_classes]`` counts; row = true class, column = predicted class."""
    p, t = _as_labels(pred, "pred"), _as_labels(true, "true")
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and true {t.shape} differ in shape")
    for name, a in (("pred", p), ("true", t)):
        if a.size and (a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"{name} holds class indices outside 0..{n_classes - 1}")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def precision_recall_f1(pred, true, n_classes: int) -> dict:
    """Per-class and macro-averaged precision, recall and F1.

    A class's precision (recall) is 0 when it was never predicted (never occurs). The macro average
    runs over the classes that occur in ``true`` or ``pred``, so a class absent from both neither
    helps nor hurts (the convention of scikit-learn without an explicit label list).
    Returns ``{"precision", "recall", "f1"}`` (macro floats) and ``"per_class"`` (arrays).
    """
    cm = confusion_matrix(pred, true, n_classes)
    tp = np.diag(cm).astype(np.float64)
    n_pred = cm.sum(axis=0).astype(np.float64)
    n_true = cm.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 0.0)
        rec = np.where(n_true > 0, tp / np.maximum(n_true, 1), 0.0)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-300), 0.0)
    present = (n_pred > 0) | (n_true > 0)
    if not present.any():
        macro = (float("nan"),) * 3
    else:
        macro = tuple(float(m[present].mean()) for m in (prec, rec, f1))
    return {
        "precision": macro[0],
        "recall": macro[1],
        "f1": macro[2],
        "per_class": {"precision": prec, "recall": rec, "f1": f1, "support": n_true.astype(np.int64)},
    }


def classification_report(pred, true, n_classes: int) -> dict:
    """Accuracy, macro precision / recall / F1 and the confusion matrix in one dict."""
    prf = precision_recall_f1(pred, true, n_classes)
    return {
        "accuracy": accuracy(pred, true),
        "precision": prf["precision"],
        "recall": prf["recall"],
        "f1": prf["f1"],
        "confusion_matrix": confusion_matrix(pred, true, n_classes),
    }
