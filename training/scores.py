"""Scores of a binary detector (AUC, log loss, threshold, inconclusive band) for training and ``evaluate``.

The ROC curve, its area and the log loss are scikit-learn's; the threshold and band rules that
the checkpoint records are this project's own, and so are the bootstrap intervals of the AUC
(small validation sets make a few hundredths of AUC noise). ("Metrics" elsewhere in the project
means the Prometheus ones.)
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn import metrics as sk
from sklearn.exceptions import UndefinedMetricWarning

__all__ = [
    "auc_interval",
    "binary_metrics",
    "calibrate_threshold",
    "inconclusive_band",
    "log_loss",
    "paired_auc_difference",
    "roc_auc",
    "roc_curve",
]

# Probabilities are clipped to [_EPS, 1 − _EPS] before the log loss, so that one confident
# mistake costs about 16 nats instead of infinity.
_EPS = 1e-7
# Bootstrap resamples are drawn this many index cells (resamples × items) at a time, so that a
# large crop set does not hold every resample in memory at once.
_CELLS_PER_CHUNK = 4_000_000


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


def _resampled_aucs(
    pos_codes: np.ndarray, neg_codes: np.ndarray, distinct: int, pos_idx: np.ndarray, neg_idx: np.ndarray
) -> np.ndarray:
    """The AUC of each resample (one row of ``pos_idx``/``neg_idx``), by ranks (Mann–Whitney).

    ``pos_codes``/``neg_codes`` place each positive and negative among the ``distinct`` sorted
    score values; a resample takes the positives ``pos_idx`` and the negatives ``neg_idx``. A
    positive wins over every negative scored below it and half of those tied with it.
    """
    rows = pos_idx.shape[0]
    cells = neg_codes[neg_idx] + (np.arange(rows) * distinct)[:, None]
    counts = np.bincount(cells.ravel(), minlength=rows * distinct).reshape(rows, distinct)
    below = np.cumsum(counts, axis=1) - 0.5 * counts  # negatives below each value, ties half
    wins = np.take_along_axis(below, pos_codes[pos_idx], axis=1).sum(axis=1)
    return np.asarray(wins / (pos_idx.shape[1] * neg_idx.shape[1]), dtype=np.float64)


def _bootstrap_aucs(
    labels: np.ndarray, score_sets: list[np.ndarray], resamples: int, seed: int
) -> list[np.ndarray] | None:
    """AUCs of ``resamples`` stratified resamples (positives and negatives each drawn with
    replacement to their own count), the same resampled items for every score vector; None with
    one class."""
    if resamples < 1:
        raise ValueError(f"resamples must be ≥ 1, not {resamples}")
    labels = np.asarray(labels).astype(bool)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    prepared = []
    for scores in score_sets:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != labels.shape:
            raise ValueError(f"{scores.shape[0]} scores for {labels.shape[0]} labels")
        if not np.isfinite(scores).all():
            raise ValueError("scores must be finite numbers")
        values, codes = np.unique(scores, return_inverse=True)
        prepared.append((codes[pos], codes[neg], values.size))
    if pos.size == 0 or neg.size == 0:
        return None
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CELLS_PER_CHUNK // (labels.size + max(size for _, _, size in prepared)))
    found: list[list[np.ndarray]] = [[] for _ in score_sets]
    done = 0
    while done < resamples:
        rows = min(per_chunk, resamples - done)
        pos_idx = rng.integers(0, pos.size, (rows, pos.size))
        neg_idx = rng.integers(0, neg.size, (rows, neg.size))
        for out, (pos_codes, neg_codes, size) in zip(found, prepared, strict=True):
            out.append(_resampled_aucs(pos_codes, neg_codes, size, pos_idx, neg_idx))
        done += rows
    return [np.concatenate(parts) for parts in found]


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie between 0 and 1, not {level}")
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def auc_interval(
    labels: np.ndarray, scores: np.ndarray, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile interval of the AUC over stratified bootstrap resamples: the positives and the
    negatives are each drawn with replacement to their own count, so every resample keeps the
    class balance. None when the AUC is undefined (one class)."""
    aucs = _bootstrap_aucs(np.asarray(labels), [np.asarray(scores)], resamples, seed)
    return None if aucs is None else _percentiles(aucs[0], level)


def paired_auc_difference(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """How much better B ranks the same items than A: ``difference`` is AUC(B) − AUC(A) on all the
    items, ``interval`` its percentile interval over stratified resamples drawn once and applied to
    both score vectors (paired), ``share_b_better`` the fraction of resamples where B's AUC is
    higher. Raises ValueError with one class, where neither AUC is defined."""
    resampled = _bootstrap_aucs(
        np.asarray(labels), [np.asarray(scores_a), np.asarray(scores_b)], resamples, seed
    )
    auc_a, auc_b = roc_auc(labels, scores_a), roc_auc(labels, scores_b)
    if resampled is None or auc_a is None or auc_b is None:
        raise ValueError("AUC is undefined with only one class present")
    differences = resampled[1] - resampled[0]
    return {
        "difference": auc_b - auc_a,
        "interval": _percentiles(differences, level),
        "share_b_better": float(np.mean(differences > 0)),
    }
