"""Detector scores against numbers worked out by hand, and against scikit-learn used directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from training.scores import binary_metrics, calibrate_threshold, log_loss, roc_auc, roc_curve


def test_metrics_worked_by_hand() -> None:
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    probs = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.4, 0.7])
    m = binary_metrics(labels, probs, threshold=0.5)
    # Predicted FAKE: 0.9, 0.8, 0.6, 0.7 → tp 3 (0.9, 0.8, 0.7), fp 1 (0.6); fn 1 (0.3); tn 3.
    assert m["confusion_matrix"] == {"tn": 3, "fp": 1, "fn": 1, "tp": 3}
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["false_positive_rate"] == pytest.approx(1 / 4)
    # AUC: of the 16 (fake, real) pairs, the fake scores higher in all but (0.3 vs 0.6), (0.3 vs 0.4).
    assert m["auc"] == pytest.approx(14 / 16)
    expected_loss = -np.mean(
        [
            math.log(0.9),
            math.log(0.8),
            math.log(0.3),
            math.log(0.4),
            math.log(0.8),
            math.log(0.9),
            math.log(0.6),
            math.log(0.7),
        ]
    )
    assert m["log_loss"] == pytest.approx(expected_loss)


def test_agrees_with_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    probs = np.round(np.clip(labels * 0.3 + rng.uniform(0, 0.7, 500), 0, 1), 2)  # many ties
    assert roc_auc(labels, probs) == pytest.approx(roc_auc_score(labels, probs))
    assert log_loss(labels, probs) == pytest.approx(sk_log_loss(labels, np.clip(probs, 1e-7, 1 - 1e-7)))


def test_one_class_leaves_auc_undefined_but_reports_the_rest() -> None:
    m = binary_metrics(np.zeros(5, dtype=int), np.array([0.1, 0.2, 0.7, 0.3, 0.9]), threshold=0.5)
    assert m["auc"] is None
    assert m["false_positive_rate"] == pytest.approx(2 / 5)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["recall"] is None and m["precision"] == 0.0


def test_threshold_maximises_balanced_accuracy() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([0.1, 0.2, 0.35, 0.3, 0.6, 0.7])
    threshold = calibrate_threshold(labels, probs)
    # Best split: FAKE from 0.6 up (J = 2/3) ties with 0.3 up (J = 1 − 1/3); the first, higher,
    # one is taken, halfway to the next lower score.
    assert threshold == pytest.approx((0.6 + 0.35) / 2)
    assert calibrate_threshold(np.ones(3), np.array([0.1, 0.5, 0.9])) == 0.5


def test_inconclusive_band_leaves_ninety_percent_right_verdicts_outside_it() -> None:
    from training.scores import inconclusive_band

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 5000)
    scores = 1.0 / (1.0 + np.exp(-1.5 * (np.where(labels == 1, 1.0, -1.0) + rng.normal(0, 1.2, 5000))))
    low, high = inconclusive_band(labels, scores, threshold=0.5, target=0.9)
    assert 0.0 < low < 0.5 < high < 1.0
    assert labels[scores >= high].mean() >= 0.9  # FAKE calls above the band
    assert 1 - labels[scores < low].mean() >= 0.9  # REAL calls below it
    # The band is as narrow as the target allows: moving either edge inwards breaks it.
    inside_high = scores[(scores >= 0.5) & (scores < high)].max()
    assert labels[scores >= inside_high].mean() < 0.9
    inside_low = scores[(scores >= low) & (scores < 0.5)].min()
    assert 1 - labels[scores < np.nextafter(inside_low, 1.0)].mean() < 0.9 or inside_low == low


def test_inconclusive_band_covers_everything_when_no_verdict_is_reliable() -> None:
    from training.scores import inconclusive_band

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    scores = rng.random(2000)  # no information at all
    assert inconclusive_band(labels, scores, threshold=0.5, target=0.9) == (0.0, 1.0)


def test_roc_curve_has_a_point_per_distinct_score_and_starts_at_the_origin() -> None:
    fpr, tpr, thresholds = roc_curve(np.array([0, 1, 1, 0]), np.array([0.1, 0.5, 0.5, 0.9]))
    assert thresholds.tolist() == [np.inf, 0.9, 0.5, 0.1]
    assert fpr.tolist() == [0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.0, 1.0, 1.0]
    # One class: the missing class's rate is undefined after the origin; no items: the origin alone.
    fpr, tpr, _ = roc_curve(np.ones(3, dtype=int), np.array([0.1, 0.5, 0.5]))
    assert fpr[0] == 0.0 and np.isnan(fpr[1:]).all() and tpr.tolist() == [0.0, 2 / 3, 1.0]
    fpr, tpr, thresholds = roc_curve(np.zeros(0, dtype=int), np.zeros(0))
    assert (fpr.tolist(), tpr.tolist(), thresholds.tolist()) == ([0.0], [0.0], [np.inf])


def test_log_loss_clips_confident_mistakes_and_is_nan_without_items() -> None:
    # A certain, wrong answer costs −log(1e-7), not infinity; one class present is fine.
    assert log_loss(np.array([1, 1]), np.array([0.0, 1.0])) == pytest.approx(-math.log(1e-7) / 2)
    assert math.isnan(log_loss(np.zeros(0), np.zeros(0)))
