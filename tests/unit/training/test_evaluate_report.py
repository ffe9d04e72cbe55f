"""The printed evaluation summary: the AUC with its bootstrap interval, and the family table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.evaluate import (
    Evaluation,
    ItemScore,
    expected_calibration_error,
    family_metrics,
    verdict_counts,
)
from training.evaluate_report import format_interval, format_report, write_outputs
from training.scores import auc_interval, binary_metrics


def _evaluation(items: list[ItemScore]) -> Evaluation:
    labels = np.array([i.label for i in items])
    scores = np.array([i.score for i in items], dtype=np.float64)
    metrics = binary_metrics(labels, scores, threshold=0.5)
    interval = auc_interval(labels, scores)
    metrics["auc_interval"] = None if interval is None else list(interval)
    metrics["expected_calibration_error"] = expected_calibration_error(labels, scores)
    metrics["by_family"] = family_metrics(items, 0.5, None)
    return Evaluation(
        data="val",
        kind="videos",
        split="all",
        split_seed=0,
        val_fraction=0.2,
        model={"name": "m", "version": "1", "sha256": "0" * 64, "trained": True},
        threshold=0.5,
        items=items,
        metrics=metrics,
    )


def _items() -> list[ItemScore]:
    rng = np.random.default_rng(0)
    items = [ItemScore(f"r{n}", f"r{n}", 0, float(rng.uniform(0, 0.8)), family="real") for n in range(20)]
    for family, count in (("face_swap", 9), ("lip_sync", 4)):
        items += [
            ItemScore(f"{family}{n}", f"{family}{n}", 1, float(rng.uniform(0.2, 1)), family=family)
            for n in range(count)
        ]
    return items


def test_auc_line_carries_its_interval() -> None:
    evaluation = _evaluation(_items())
    low, high = evaluation.metrics["auc_interval"]
    line = next(x for x in format_report(evaluation).splitlines() if x.startswith("AUC "))
    assert line == (
        f"AUC        {evaluation.metrics['auc']:.4f} "
        f"(95 % interval {low:.2f}–{high:.2f}, stratified bootstrap)"
    )
    assert format_interval(None) == "undefined" and format_interval((0.614, 0.8351)) == "0.61–0.84"


def test_one_class_keeps_the_undefined_auc_line() -> None:
    reals = [i for i in _items() if i.label == 0]
    text = format_report(_evaluation(reals))
    assert "AUC        undefined (needs both FAKE and REAL items)" in text.splitlines()


def test_family_table_has_an_aligned_interval_column() -> None:
    evaluation = _evaluation(_items())
    lines = format_report(evaluation).splitlines()
    start = next(n for n, x in enumerate(lines) if x.startswith("family "))
    header, rows = lines[start], lines[start + 1 : start + 4]
    assert header.split("  ")[0] == "family" and "AUC 95 %" in header
    assert [r.split()[0] for r in rows] == ["face_swap", "lip_sync", "real"]
    assert {len(r) for r in rows} == {len(header)}, "every row as wide as the header"
    column = header.index("AUC 95 %")
    cells = [r[column - 1 : column + len("AUC 95 %")].strip() for r in rows]
    swap = evaluation.metrics["by_family"]["face_swap"]["auc_interval"]
    assert cells == [format_interval(swap), cells[1], "undefined"]
    assert "–" in cells[1]


def test_metrics_json_holds_the_intervals(tmp_path: Path) -> None:
    evaluation = _evaluation(_items())
    written = write_outputs(evaluation, tmp_path)
    metrics = json.loads(written["metrics"].read_text())["metrics"]
    assert metrics["auc_interval"] == evaluation.metrics["auc_interval"]
    assert len(metrics["by_family"]["lip_sync"]["auc_interval"]) == 2
    assert metrics["by_family"]["real"]["auc_interval"] is None


def test_verdicts_count_what_users_were_told() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.05, 0.35, 0.62, 0.9, 0.1, 0.4, 0.7, 0.95])
    # Band [0.3, 0.6) around 0.5: 0.35 and 0.4 inconclusive.
    counts = verdict_counts(labels, scores, 0.5, (0.3, 0.6))
    assert counts == {
        "fake": {"given": 4, "right": 2},  # 0.62 and 0.9 are real, 0.7 and 0.95 fake
        "real": {"given": 2, "right": 1},  # 0.05 real, 0.1 fake
        "inconclusive": {"real": 1, "fake": 1},
    }
    # A band over the whole scale leaves nothing decided.
    assert verdict_counts(labels, scores, 0.5, (0.0, 1.0))["fake"]["given"] == 0
    # Without a band every item is decided.
    assert verdict_counts(labels, scores, 0.5, None)["inconclusive"] == {"real": 0, "fake": 0}
    evaluation = _evaluation(
        [
            ItemScore(f"i{n}", f"i{n}", int(y), float(s))
            for n, (y, s) in enumerate(zip(labels, scores, strict=True))
        ]
    )
    evaluation.metrics["inconclusive_band"] = [0.3, 0.6]
    evaluation.metrics["inconclusive"] = 2
    evaluation.metrics["accuracy_outside_band"] = 0.5
    evaluation.metrics["verdicts"] = counts
    line = next(x for x in format_report(evaluation).splitlines() if x.startswith("verdicts"))
    assert line == "verdicts   FAKE 4 (2 right), REAL 2 (1 right), inconclusive 2 (1 REAL, 1 FAKE)"
