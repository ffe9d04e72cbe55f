"""Per-family metrics and matched pairs of an evaluation, against counts by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.evaluate import ItemScore, family_metrics, pair_metrics, read_families, read_pairs


def _item(name: str, label: int, score: float | None, family: str) -> ItemScore:
    return ItemScore(name, name, label, score, "ok" if score is not None else "no_face", family=family)


ITEMS = [
    _item("r1", 0, 0.10, "real"),
    _item("r2", 0, 0.30, "real"),
    _item("r3", 0, 0.60, "real"),  # called FAKE at 0.5
    _item("r4", 0, None, "real"),  # no face: counted, not scored
    _item("s1", 1, 0.90, "face_swap"),
    _item("s2", 1, 0.20, "face_swap"),
    _item("t1", 1, 0.05, "talking_head"),
    _item("t2", 1, 0.35, "talking_head"),
]


def test_each_family_against_every_real_item() -> None:
    table = family_metrics(ITEMS, threshold=0.5, band=(0.25, 0.55))
    assert list(table) == ["face_swap", "talking_head", "real"], "fake families first, real last"
    swap = table["face_swap"]
    # 0.90 beats all three reals, 0.20 beats one of three: AUC = (3 + 1) / 6.
    assert swap["auc_vs_real"] == pytest.approx(4 / 6)
    assert swap["recall"] == 0.5 and swap["called_fake"] == 1
    assert swap["items"] == 2 and swap["mean_score"] == pytest.approx(0.55)
    assert swap["inconclusive_share"] == 0.0
    low, high = swap["auc_interval"]
    assert 0.0 <= low <= 4 / 6 <= high <= 1.0 and high - low > 0.3, "2 fakes, 3 reals: very uncertain"
    head = table["talking_head"]
    # 0.05 beats none, 0.35 beats 0.10 and 0.30: AUC = 2 / 6, below chance as in the wild.
    assert head["auc_vs_real"] == pytest.approx(2 / 6)
    assert head["recall"] == 0.0 and head["inconclusive_share"] == 0.5
    real = table["real"]
    assert real["items"] == 4 and real["scored"] == 3
    assert real["false_positive_rate"] == pytest.approx(1 / 3) and real["called_fake"] == 1
    assert real["inconclusive_share"] == pytest.approx(1 / 3)  # 0.30 lies inside [0.25, 0.55)
    assert "auc_vs_real" not in real and real["auc_interval"] is None


def test_pairs_report_the_fake_minus_real_difference() -> None:
    result = pair_metrics(ITEMS, [("r1", "s1"), ("r2", "t1"), ("r4", "t2")])
    assert [row["difference"] for row in result["pairs"]] == [
        pytest.approx(0.80),
        pytest.approx(-0.25),
        None,
    ]
    assert result["scored"] == 2 and result["fake_above_real"] == 1
    assert result["mean_difference"] == pytest.approx(0.275)
    with pytest.raises(ValueError, match="not in the evaluated data"):
        pair_metrics(ITEMS, [("r1", "missing.mp4")])


def test_families_and_pairs_are_read_from_files(tmp_path: Path) -> None:
    (tmp_path / "metadata.json").write_text(
        json.dumps({"a.mp4": {"label": "REAL", "family": "real"}, "b.mp4": {"label": "FAKE"}})
    )
    assert read_families(tmp_path) == {"a.mp4": "real"}
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("real,fake\na.mp4,b.mp4\n")
    assert read_pairs(pairs) == [("a.mp4", "b.mp4")]
    pairs.write_text("before,after\na.mp4,b.mp4\n")
    with pytest.raises(ValueError, match="real,fake"):
        read_pairs(pairs)
