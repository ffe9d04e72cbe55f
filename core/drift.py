"""Drift of incoming videos: per-job statistics of a recent window compared with a reference window.

Each feature gets a population stability index (PSI) and a two-sample test: Kolmogorov–Smirnov
for numbers, chi-square for categories. A feature is flagged when both agree: the PSI says the
distribution moved by a size that matters (0.2 is the usual "significant" line; 0.1–0.2 is
"moderate") and the test says the move is not sampling noise. Either alone misleads: PSI over
small samples is noisy, and with thousands of jobs the KS test flags shifts too small to matter.

Pure functions over plain rows (mappings of feature name to value); the API reads the rows
from ``job_statistics`` and this module never touches a database.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np

__all__ = [
    "FEATURES",
    "DriftThresholds",
    "Feature",
    "FeatureDrift",
    "categorical_psi",
    "compare_feature",
    "compare_windows",
    "format_duration",
    "parse_duration",
    "population_stability_index",
]

FeatureKind = Literal["numeric", "categorical"]
DriftStatus = Literal["ok", "drift", "insufficient_data"]


@dataclass(frozen=True)
class Feature:
    name: str
    kind: FeatureKind
    description: str
    side: Literal["input", "output"] = "input"


FEATURES: tuple[Feature, ...] = (
    Feature("brightness_pct", "numeric", "mean luma of sampled frames, % of full scale"),
    Feature("histogram_mean", "numeric", "mean of the luma histogram (0–255)"),
    Feature("histogram_std", "numeric", "standard deviation of the luma histogram"),
    Feature("histogram_variance", "numeric", "variance of the luma histogram"),
    Feature("sharpness", "numeric", "variance of the Laplacian of sampled frames"),
    Feature("face_sharpness", "numeric", "variance of the Laplacian of face regions at a fixed size"),
    Feature("face_size_px", "numeric", "face size, square root of the box area in video pixels"),
    Feature("face_size_ratio", "numeric", "face box height over frame height"),
    Feature("faces_per_frame", "numeric", "faces found per sampled frame"),
    Feature("face_frame_ratio", "numeric", "share of sampled frames with at least one face"),
    Feature("width", "numeric", "displayed width in pixels"),
    Feature("height", "numeric", "displayed height in pixels"),
    Feature("fps", "numeric", "frame rate"),
    Feature("duration_s", "numeric", "duration in seconds"),
    Feature("codec", "categorical", "video codec"),
    Feature("score", "numeric", "P(fake) of the video", side="output"),
    Feature("verdict", "categorical", "fake, real, inconclusive or no_face", side="output"),
    Feature("no_face", "categorical", "no face in any sampled frame", side="output"),
)


@dataclass(frozen=True)
class DriftThresholds:
    psi: float = 0.2  # PSI at or above this is a shift that matters
    p_value: float = 0.01  # the two-sample test must reject "same distribution" at this level
    min_samples: int = 30  # fewer jobs than this in either window: no verdict
    max_bins: int = 10

    def __post_init__(self) -> None:
        if self.psi <= 0:
            raise ValueError("the PSI threshold must be positive")
        if not 0 < self.p_value < 1:
            raise ValueError("the p-value threshold must be in (0, 1)")
        if self.min_samples < 2:
            raise ValueError("min_samples must be at least 2")
        if self.max_bins < 2:
            raise ValueError("max_bins must be at least 2")


@dataclass
class FeatureDrift:
    feature: str
    kind: FeatureKind
    side: str
    test: Literal["ks", "chi2"]
    reference_count: int
    recent_count: int
    psi: float | None
    statistic: float | None
    p_value: float | None
    status: DriftStatus
    reference: dict[str, Any] = field(default_factory=dict)
    recent: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return self.status == "drift"

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "side": self.side,
            "test": self.test,
            "reference_count": self.reference_count,
            "recent_count": self.recent_count,
            "psi": _round(self.psi),
            "statistic": _round(self.statistic),
            "p_value": _round(self.p_value, 8),
            "status": self.status,
            "flagged": self.flagged,
            "reference": self.reference,
            "recent": self.recent,
        }


def _round(value: float | None, digits: int = 5) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


# --- PSI -----------------------------------------------------------------------------------------


def _psi_from_counts(reference: np.ndarray, recent: np.ndarray) -> float:
    """PSI of two histograms over the same bins. Half a count is added to every bin so that an
    empty bin costs a bounded amount instead of an infinite one."""
    bins = len(reference)
    expected = (reference + 0.5) / (reference.sum() + 0.5 * bins)
    actual = (recent + 0.5) / (recent.sum() + 0.5 * bins)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _bin_count(reference_n: int, recent_n: int, max_bins: int) -> int:
    # About 25 jobs per bin in the smaller window: with fewer, PSI mostly measures noise (its
    # expected value under no shift grows like bins × (1/n₁ + 1/n₂)).
    return int(min(max_bins, max(2, min(reference_n, recent_n) // 25)))


def population_stability_index(
    reference: Sequence[float] | np.ndarray, recent: Sequence[float] | np.ndarray, *, max_bins: int = 10
) -> float:
    """PSI of numeric samples. Bins are quantiles of the reference; a feature with few distinct
    values (resolution, frame rate) gets one bin per value instead."""
    ref = np.asarray(reference, dtype=np.float64)
    rec = np.asarray(recent, dtype=np.float64)
    if len(ref) == 0 or len(rec) == 0:
        raise ValueError("both samples need at least one value")
    distinct = np.unique(np.concatenate([ref, rec]))
    if len(distinct) <= max_bins:
        ref_counts = np.array([np.sum(ref == v) for v in distinct], dtype=np.float64)
        rec_counts = np.array([np.sum(rec == v) for v in distinct], dtype=np.float64)
        return _psi_from_counts(ref_counts, rec_counts)
    bins = _bin_count(len(ref), len(rec), max_bins)
    inner = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    ref_binned = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=len(inner) + 1)
    rec_binned = np.bincount(np.searchsorted(inner, rec, side="right"), minlength=len(inner) + 1)
    return _psi_from_counts(ref_binned.astype(np.float64), rec_binned.astype(np.float64))


def categorical_psi(reference: Sequence[str], recent: Sequence[str]) -> float:
    if not reference or not recent:
        raise ValueError("both samples need at least one value")
    ref_counts, rec_counts = Counter(reference), Counter(recent)
    categories = sorted(set(ref_counts) | set(rec_counts))
    return _psi_from_counts(
        np.array([ref_counts[c] for c in categories], dtype=np.float64),
        np.array([rec_counts[c] for c in categories], dtype=np.float64),
    )


# --- comparison ----------------------------------------------------------------------------------


def _numeric_values(values: Iterable[Any]) -> np.ndarray:
    out = []
    for value in values:
        if value is None or isinstance(value, bool | str):
            continue
        number = float(value)
        if math.isfinite(number):
            out.append(number)
    return np.asarray(out, dtype=np.float64)


def _category(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _numeric_summary(values: np.ndarray) -> dict[str, Any]:
    if len(values) == 0:
        return {}
    p05, median, p95 = np.quantile(values, [0.05, 0.5, 0.95])
    return {
        "mean": _round(float(values.mean())),
        "std": _round(float(values.std())),
        "p05": _round(float(p05)),
        "median": _round(float(median)),
        "p95": _round(float(p95)),
    }


def _categorical_summary(values: Sequence[str]) -> dict[str, Any]:
    if not values:
        return {}
    counts = Counter(values)
    return {"shares": {key: round(count / len(values), 4) for key, count in counts.most_common(10)}}


def compare_feature(
    feature: Feature,
    reference: Iterable[Any],
    recent: Iterable[Any],
    thresholds: DriftThresholds | None = None,
) -> FeatureDrift:
    """PSI and the two-sample test of one feature; missing values (None, NaN) are left out."""
    from scipy import stats

    thresholds = thresholds or DriftThresholds()
    if feature.kind == "numeric":
        ref = _numeric_values(reference)
        rec = _numeric_values(recent)
        result = FeatureDrift(
            feature=feature.name,
            kind=feature.kind,
            side=feature.side,
            test="ks",
            reference_count=len(ref),
            recent_count=len(rec),
            psi=None,
            statistic=None,
            p_value=None,
            status="insufficient_data",
            reference=_numeric_summary(ref),
            recent=_numeric_summary(rec),
        )
        if min(len(ref), len(rec)) < thresholds.min_samples:
            return result
        result.psi = population_stability_index(ref, rec, max_bins=thresholds.max_bins)
        if np.ptp(np.concatenate([ref, rec])) == 0.0:
            result.statistic, result.p_value = 0.0, 1.0
        else:
            test = stats.ks_2samp(ref, rec)
            result.statistic, result.p_value = float(test.statistic), float(test.pvalue)
    else:
        ref_c = [c for c in (_category(v) for v in reference) if c is not None]
        rec_c = [c for c in (_category(v) for v in recent) if c is not None]
        result = FeatureDrift(
            feature=feature.name,
            kind=feature.kind,
            side=feature.side,
            test="chi2",
            reference_count=len(ref_c),
            recent_count=len(rec_c),
            psi=None,
            statistic=None,
            p_value=None,
            status="insufficient_data",
            reference=_categorical_summary(ref_c),
            recent=_categorical_summary(rec_c),
        )
        if min(len(ref_c), len(rec_c)) < thresholds.min_samples:
            return result
        result.psi = categorical_psi(ref_c, rec_c)
        categories = sorted(set(ref_c) | set(rec_c))
        if len(categories) < 2:
            result.statistic, result.p_value = 0.0, 1.0
        else:
            ref_counts, rec_counts = Counter(ref_c), Counter(rec_c)
            table = [[ref_counts[c] for c in categories], [rec_counts[c] for c in categories]]
            chi2 = stats.chi2_contingency(table)
            result.statistic, result.p_value = float(chi2.statistic), float(chi2.pvalue)
    drifted = result.psi >= thresholds.psi and result.p_value < thresholds.p_value
    result.status = "drift" if drifted else "ok"
    return result


def compare_windows(
    reference_rows: Sequence[Mapping[str, Any]],
    recent_rows: Sequence[Mapping[str, Any]],
    *,
    features: Sequence[Feature] = FEATURES,
    thresholds: DriftThresholds | None = None,
) -> list[FeatureDrift]:
    """Every feature of ``features`` compared between the two windows' rows."""
    return [
        compare_feature(
            feature,
            (row.get(feature.name) for row in reference_rows),
            (row.get(feature.name) for row in recent_rows),
            thresholds,
        )
        for feature in features
    ]


# --- windows -------------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"24h"``, ``"7d"``, ``"2w"`` or plain seconds; ValueError otherwise."""
    match = _DURATION.match(text or "")
    if match is None:
        raise ValueError(f"{text!r} is not a duration; use a number with s, m, h, d or w (e.g. 24h)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
