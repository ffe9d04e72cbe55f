"""Drift: PSI and the two-sample tests flag a shifted synthetic stream and leave an unshifted one alone."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from core.drift import (
    FEATURES,
    DriftThresholds,
    Feature,
    categorical_psi,
    compare_feature,
    compare_windows,
    format_duration,
    parse_duration,
    population_stability_index,
)

BRIGHTNESS = Feature("brightness_pct", "numeric", "test")
CODEC = Feature("codec", "categorical", "test")


def _stream(rng: np.random.Generator, n: int, *, brightness: float = 45.0, sharpness: float = 300.0,
            hevc_share: float = 0.1) -> list[dict[str, object]]:
    """Per-job statistics as a worker would store them."""
    rows = []
    for _ in range(n):
        rows.append({
            "brightness_pct": float(rng.normal(brightness, 8.0)),
            "histogram_mean": float(rng.normal(brightness * 2.55, 20.0)),
            "sharpness": float(rng.lognormal(np.log(sharpness), 0.4)),
            "face_size_px": float(rng.normal(180.0, 40.0)),
            "width": int(rng.choice([640, 1280, 1920])),
            "fps": float(rng.choice([25.0, 30.0])),
            "codec": "hevc" if rng.random() < hevc_share else "h264",
            "score": float(rng.beta(2, 5)),
            "verdict": "fake" if rng.random() < 0.2 else "real",
            "no_face": bool(rng.random() < 0.05),
        })
    return rows


def test_compare_windows_flags_nothing_in_an_unshifted_stream() -> None:
    rng = np.random.default_rng(7)
    reference, recent = _stream(rng, 400), _stream(rng, 150)
    results = compare_windows(reference, recent)
    flagged = [r.feature for r in results if r.flagged]
    assert flagged == []
    measured = {r.feature: r for r in results if r.status != "insufficient_data"}
    assert {"brightness_pct", "sharpness", "codec", "verdict"} <= set(measured)
    assert all(r.psi is not None and r.psi < 0.1 for r in measured.values())


def test_compare_windows_flags_the_shifted_features_only() -> None:
    rng = np.random.default_rng(11)
    reference = _stream(rng, 400)
    # Darker, blurrier videos, half of them HEVC: the features that moved must be flagged, the
    # others (face size, resolution, frame rate, outputs) must not.
    recent = _stream(rng, 150, brightness=28.0, sharpness=90.0, hevc_share=0.5)
    results = {r.feature: r for r in compare_windows(reference, recent)}
    assert {name for name, r in results.items() if r.flagged} == {
        "brightness_pct",
        "histogram_mean",
        "sharpness",
        "codec",
    }
    assert results["brightness_pct"].psi is not None and results["brightness_pct"].psi > 0.5
    assert results["brightness_pct"].p_value is not None and results["brightness_pct"].p_value < 1e-6
    assert results["codec"].test == "chi2" and results["brightness_pct"].test == "ks"
    assert results["brightness_pct"].recent["mean"] < results["brightness_pct"].reference["mean"] - 10


def test_small_windows_give_no_verdict() -> None:
    rng = np.random.default_rng(3)
    result = compare_feature(BRIGHTNESS, rng.normal(40, 5, 500), rng.normal(90, 5, 10))
    assert result.status == "insufficient_data" and not result.flagged
    assert result.recent_count == 10 and result.psi is None


def test_missing_values_are_left_out() -> None:
    values = [1.0, None, float("nan"), 2.0, "x", 3.0]
    result = compare_feature(BRIGHTNESS, values * 20, values * 20, DriftThresholds(min_samples=2))
    assert result.reference_count == 60 and result.recent_count == 60
    assert result.psi == pytest.approx(0.0) and result.p_value == pytest.approx(1.0)
    assert result.status == "ok"


def test_a_large_shift_with_a_weak_test_is_not_flagged() -> None:
    # PSI alone is noisy on small samples: both signals must agree.
    thresholds = DriftThresholds(psi=0.2, p_value=1e-12, min_samples=30)
    rng = np.random.default_rng(5)
    result = compare_feature(BRIGHTNESS, rng.normal(50, 10, 40), rng.normal(58, 10, 40), thresholds)
    assert result.psi is not None and result.p_value is not None
    assert result.p_value > 1e-12 and not result.flagged


def test_psi_is_zero_for_identical_samples_and_grows_with_the_shift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, 2000)
    assert population_stability_index(reference, reference) == pytest.approx(0.0, abs=1e-12)
    small = population_stability_index(reference, rng.normal(0.25, 1, 2000))
    large = population_stability_index(reference, rng.normal(1.0, 1, 2000))
    assert 0.02 < small < 0.2 < large


def test_psi_by_hand_for_discrete_values() -> None:
    # Two values, 50/50 against 80/20, half a count added per bin.
    psi = population_stability_index([1.0] * 50 + [2.0] * 50, [1.0] * 80 + [2.0] * 20)
    expected = np.array([50.5, 50.5]) / 101.0
    actual = np.array([80.5, 20.5]) / 101.0
    assert psi == pytest.approx(float(np.sum((actual - expected) * np.log(actual / expected))))
    assert categorical_psi(["a"] * 50 + ["b"] * 50, ["a"] * 80 + ["b"] * 20) == pytest.approx(psi)


def test_psi_refuses_empty_samples() -> None:
    with pytest.raises(ValueError):
        population_stability_index([], [1.0])
    with pytest.raises(ValueError):
        categorical_psi(["a"], [])


def test_new_category_is_flagged() -> None:
    result = compare_feature(CODEC, ["h264"] * 300, ["h264"] * 60 + ["av1"] * 40)
    assert result.flagged and result.recent["shares"]["av1"] == pytest.approx(0.4)


def test_features_cover_inputs_and_outputs() -> None:
    names = {f.name for f in FEATURES}
    assert {"brightness_pct", "histogram_mean", "histogram_std", "histogram_variance", "sharpness",
            "face_size_px", "width", "height", "fps", "codec"} <= names
    assert {f.name for f in FEATURES if f.side == "output"} == {"score", "verdict", "no_face"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("24h", 86400), ("7d", 604800), ("2w", 1209600), ("30", 30)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "abc", "-1h", "0h", "1y", "h"])
def test_parse_duration_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("90s", "15m", "24h", "3d", "2w"):
        assert format_duration(parse_duration(text)) in {text, "1d" if text == "24h" else text}


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError):
        DriftThresholds(psi=0)
    with pytest.raises(ValueError):
        DriftThresholds(p_value=1.5)
