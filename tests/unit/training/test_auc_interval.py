"""Bootstrap intervals of the AUC and paired AUC differences, against scikit-learn and known cases."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.scores import _resampled_aucs, auc_interval, paired_auc_difference, roc_auc


def _noisy(count: int, seed: int, separation: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    return labels, np.clip(labels * separation + rng.uniform(0, 0.7, count), 0, 1)


def test_rank_auc_agrees_with_scikit_learn_with_ties() -> None:
    for seed in range(5):
        labels, scores = _noisy(300, seed)
        scores = np.round(scores, 1)  # a handful of distinct values: ties everywhere
        values, codes = np.unique(scores, return_inverse=True)
        pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
        every = _resampled_aucs(
            codes[pos], codes[neg], values.size, np.arange(pos.size)[None], np.arange(neg.size)[None]
        )
        assert every.shape == (1,)
        assert every[0] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_resampled_auc_counts_each_drawn_item_as_often_as_drawn() -> None:
    # Positives 0.9 and 0.2; negatives 0.5 and 0.2. Drawing the first positive twice and the
    # second negative twice: 0.9 beats 0.2 in all four pairs.
    scores = np.array([0.9, 0.2, 0.5, 0.2])
    values, codes = np.unique(scores, return_inverse=True)
    pos, neg = codes[:2], codes[2:]
    drawn = _resampled_aucs(pos, neg, values.size, np.array([[0, 0], [1, 1], [0, 1]]), np.array([[1, 1]] * 3))
    # Row 2: 0.2 ties 0.2 → half a win in each pair. Row 3: (1 + 1 + 0.5 + 0.5) / 4.
    assert drawn.tolist() == [1.0, 0.5, 0.75]


def test_interval_contains_the_auc_and_narrows_as_the_sample_grows() -> None:
    widths = []
    for count in (40, 400, 4000):
        labels, scores = _noisy(count, seed=count)
        low, high = auc_interval(labels, scores)  # type: ignore[misc]
        auc = roc_auc(labels, scores)
        assert auc is not None and low < auc < high
        assert 0.0 <= low < high <= 1.0
        widths.append(high - low)
    assert widths[0] > 2 * widths[1] > 4 * widths[2]


def test_interval_level_widens_the_interval() -> None:
    labels, scores = _noisy(100, seed=1)
    low50, high50 = auc_interval(labels, scores, level=0.5)  # type: ignore[misc]
    low99, high99 = auc_interval(labels, scores, level=0.99)  # type: ignore[misc]
    assert low99 < low50 < high50 < high99
    with pytest.raises(ValueError, match="level"):
        auc_interval(labels, scores, level=95)
    with pytest.raises(ValueError, match="resamples"):
        auc_interval(labels, scores, resamples=0)


def test_one_class_has_no_interval() -> None:
    assert auc_interval(np.zeros(6, dtype=int), np.linspace(0, 1, 6)) is None
    assert auc_interval(np.ones(6, dtype=int), np.linspace(0, 1, 6)) is None
    with pytest.raises(ValueError, match="one class"):
        paired_auc_difference(np.ones(6, dtype=int), np.linspace(0, 1, 6), np.linspace(1, 0, 6))


def test_interval_is_reproducible_with_a_seed() -> None:
    labels, scores = _noisy(80, seed=2)
    first = auc_interval(labels, scores, seed=7)
    assert auc_interval(labels, scores, seed=7) == first
    assert auc_interval(labels, scores, seed=8) != first


def test_bad_scores_are_refused() -> None:
    labels = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="finite"):
        auc_interval(labels, np.array([0.1, np.nan, 0.3, 0.4]))
    with pytest.raises(ValueError, match="3 scores for 4 labels"):
        auc_interval(labels, np.array([0.1, 0.2, 0.3]))


def test_hundred_items_take_well_under_a_second() -> None:
    labels, scores = _noisy(100, seed=3)
    start = time.perf_counter()
    auc_interval(labels, scores, resamples=2000)
    paired_auc_difference(labels, scores, scores[::-1], resamples=2000)
    assert time.perf_counter() - start < 0.5


def test_a_model_against_itself_differs_by_exactly_nothing() -> None:
    labels, scores = _noisy(78, seed=4)
    result = paired_auc_difference(labels, scores, scores.copy())
    assert result == {"difference": 0.0, "interval": (0.0, 0.0), "share_b_better": 0.0}


def test_a_clearly_better_model_wins_nearly_every_resample() -> None:
    rng = np.random.default_rng(5)
    labels = np.array([1] * 37 + [0] * 41)
    weak = labels * 0.1 + rng.uniform(0, 1, labels.size)
    strong = labels * 0.6 + rng.uniform(0, 1, labels.size)
    result = paired_auc_difference(labels, weak, strong)
    weak_auc, strong_auc = roc_auc(labels, weak), roc_auc(labels, strong)
    assert weak_auc is not None and strong_auc is not None
    assert result["difference"] == pytest.approx(strong_auc - weak_auc)
    low, high = result["interval"]
    assert 0.0 < low < result["difference"] < high
    assert result["share_b_better"] > 0.99
    # The other way round: the same resamples, every difference negated.
    reverse = paired_auc_difference(labels, strong, weak)
    assert reverse["interval"] == pytest.approx((-high, -low))
    assert reverse["share_b_better"] < 0.01


def test_pairing_removes_the_noise_the_models_share() -> None:
    # B is A plus a small improvement: alone each AUC is uncertain by about ±0.1 on 78 items, but
    # the paired difference is much tighter because the same items move both AUCs.
    rng = np.random.default_rng(6)
    labels = np.array([1] * 37 + [0] * 41)
    a = labels * 0.4 + rng.uniform(0, 1, labels.size)
    b = a + labels * 0.05
    single_low, single_high = auc_interval(labels, a)  # type: ignore[misc]
    diff_low, diff_high = paired_auc_difference(labels, a, b)["interval"]
    assert diff_high - diff_low < (single_high - single_low) / 2
