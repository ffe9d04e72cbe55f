"""Scores of a binary detector (AUC, log loss, threshold, inconclusive band) for training and ``evaluate``.

The ROC curve, its area and the log loss are scikit-learn's; the threshold and band rules that
the checkpoint records are this project's own. ("Metrics" elsewhere in the project means the
Prometheus ones.)
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn import metrics as sk
from sklearn.exceptions import UndefinedMetricWarning

__all__ = [
    "binary_metrics",
    "calibrate_threshold",
    "inconclusive_band",
    "log_loss",
    "roc_auc",
    "roc_curve",
]

# Probabilities are clipped to [_EPS, 1 − _EPS] before the log loss, so that one confident
# mistake costs about 16 nats instead of infinity.
_EPS = 1e-7


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates, thresholds), thresholds descending from +inf.

    A point is emitted for every distinct score, so ties move both rates at once. With one class
    present the other class's rate is NaN after the (0, 0) origin.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return np.zeros(1), np.zeros(1), np.array([np.inf])
    with warnings.catch_warnings():
        # One class present: the rate of the missing one is undefined, and NaN says so.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fpr, tpr, thresholds = sk.roc_curve(labels.astype(np.int64), scores, drop_intermediate=False)
    # The +inf threshold calls nothing FAKE: the origin, even where a rate is otherwise undefined.
    fpr[0], tpr[0] = 0.0, 0.0
    return fpr, tpr, thresholds


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve; None when only one class is present (it is undefined)."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return None
    return float(sk.roc_auc_score(labels.astype(np.int64), np.asarray(scores, dtype=np.float64)))


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean binary cross-entropy, probabilities clipped to [1e-7, 1 − 1e-7]; NaN with no items."""
    labels = np.asarray(labels).astype(bool)
    probs = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0 - _EPS)
    if len(labels) == 0:
        return math.nan
    return float(sk.log_loss(labels.astype(np.int64), probs, labels=[0, 1]))


def calibrate_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The threshold that maximises balanced accuracy (Youden's J = TPR − FPR) on these scores.

    It is placed halfway between the chosen score and the next lower one, so it generalises a
    little better than sitting on a validation score. With one class present, 0.5.
    """
    labels = np.asarray(labels).astype(bool)
    probs = np.asarray(probs, dtype=np.float64)
    if labels.all() or not labels.any():
        return 0.5
    fpr, tpr, thresholds = roc_curve(labels, probs)
    # Rounded so that equal J values computed along different paths (2/3 vs 1 − 1/3) tie exactly,
    # and the first (highest) threshold wins.
    best = int(np.argmax(np.round(tpr - fpr, 12)[1:])) + 1  # skip the +inf point
    chosen = thresholds[best]
    lower = probs[probs < chosen]
    threshold = (chosen + lower.max()) / 2.0 if lower.size else chosen
    return float(np.clip(threshold, 0.0, 1.0))


def inconclusive_band(
    labels: np.ndarray, probs: np.ndarray, *, threshold: float, target: float = 0.9
) -> tuple[float, float]:
    """Scores in [low, high) are too close to the threshold to call: outside the band, each
    verdict is right at least ``target`` of the time on these labelled scores.

    ``high`` is the lowest cut-off ≥ ``threshold`` at which at least ``target`` of the items
    scoring ≥ it are FAKE (the precision of a FAKE call); ``low`` the highest cut-off ≤
    ``threshold`` at which at least ``target`` of the items scoring below it are REAL. Where no
    cut-off reaches ``target`` the band runs to 1 (or 0): no score on that side is conclusive.
    A cut-off counts only when at least ``min_support`` items (20, or 1 % of them) fall beyond
    it, so a handful of lucky extreme scores does not open a side.
    """
    labels = np.asarray(labels).astype(bool)
    probs = np.asarray(probs, dtype=np.float64)
    candidates = np.unique(np.concatenate([probs, [threshold]]))
    ordered = np.sort(probs)
    fake_order = labels[np.argsort(probs, kind="stable")]
    fakes_below = np.concatenate([[0], np.cumsum(fake_order)])  # FAKE items among the i lowest
    total, total_fake = len(probs), int(labels.sum())
    min_support = max(20, math.ceil(0.01 * total))
    high, low = 1.0, 0.0
    for cut in candidates[candidates >= threshold]:  # ascending: the first that works is lowest
        below = int(np.searchsorted(ordered, cut, side="left"))
        called = total - below
        if called >= min_support and (total_fake - fakes_below[below]) / called >= target:
            high = float(cut)
            break
    for cut in candidates[candidates <= threshold][::-1]:  # descending: the first is highest
        below = int(np.searchsorted(ordered, cut, side="left"))
        if below >= min_support and (below - fakes_below[below]) / below >= target:
            low = float(cut)
            break
    return low, high


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator else None


def binary_metrics(labels: np.ndarray, probs: np.ndarray, *, threshold: float) -> dict[str, Any]:
    """Everything ``evaluate`` prints: a prediction is FAKE when P(fake) ≥ threshold.

    Ratios with an empty denominator (precision with no positive predictions, AUC with one class)
    are None rather than a made-up number.
    """
    labels = np.asarray(labels).astype(bool)
    probs = np.asarray(probs, dtype=np.float64)
    predicted = probs >= threshold
    tp = int(np.sum(predicted & labels))
    fp = int(np.sum(predicted & ~labels))
    tn = int(np.sum(~predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "count": len(labels),
        "positives": int(labels.sum()),
        "negatives": int((~labels).sum()),
        "threshold": float(threshold),
        "auc": roc_auc(labels, probs),
        "log_loss": log_loss(labels, probs) if len(labels) else None,
        "accuracy": _ratio(tp + tn, len(labels)),
        "precision": precision,
        "recall": recall,
        "f1": f1 if (tp + fp + fn) else None,
        "false_positive_rate": _ratio(fp, fp + tn),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }
