"""Two models' predictions on the same items, compared: AUC of each and the paired difference.

Both files are ``predictions.csv`` as ``evaluate --out`` writes them (columns item, group, label,
family, score, predicted, status). Items are joined on ``item``; only those scored (status ``ok``
and a score) in both files count. The difference B − A and its interval come from stratified
bootstrap resamples drawn once and applied to both models' scores, so the noise the two share
(which items happen to be in the set) cancels.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import SourceNotFoundError
from training.errors import PredictionsError
from training.scores import paired_auc_difference, roc_auc

__all__ = ["Prediction", "compare_predictions", "format_comparison", "read_predictions"]

_COLUMNS = ("item", "label", "score", "status")
_LABELS = {"FAKE": 1, "REAL": 0}


@dataclass(frozen=True)
class Prediction:
    label: int  # 1 = FAKE
    family: str
    score: float | None  # None when the item was not scored


def read_predictions(path: str | Path) -> dict[str, Prediction]:
    """Each item's label, family and score (None unless its status is ``ok`` and it has one)."""
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"predictions file not found: {path}")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise PredictionsError(f"{path}: no column {', '.join(missing)} (is it a predictions.csv?)")
        found: dict[str, Prediction] = {}
        for line, row in enumerate(reader, 2):
            label = _LABELS.get(row["label"])
            if label is None:
                raise PredictionsError(f"{path} line {line}: label {row['label']!r} is neither FAKE nor REAL")
            if row["item"] in found:
                raise PredictionsError(f"{path} line {line}: item {row['item']!r} appears twice")
            score = None
            if row["status"] == "ok" and row["score"]:
                try:
                    score = float(row["score"])
                except ValueError:
                    score = math.nan
                if not math.isfinite(score):
                    raise PredictionsError(f"{path} line {line}: score {row['score']!r} is not a number")
            family = row.get("family") or ("fake" if label else "real")
            found[row["item"]] = Prediction(label, family, score)
    return found


def _paired(labels: np.ndarray, a: np.ndarray, b: np.ndarray, **bootstrap: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "items": int(labels.size),
        "fake": int(labels.sum()),
        "real": int((labels == 0).sum()),
        "auc_a": roc_auc(labels, a),
        "auc_b": roc_auc(labels, b),
    }
    if row["auc_a"] is not None:
        paired = paired_auc_difference(labels, a, b, **bootstrap)
        row |= {**paired, "interval": list(paired["interval"])}
    return row


def compare_predictions(
    path_a: str | Path, path_b: str | Path, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Overall and per-family (each family's FAKE items against every REAL item) AUC of A and of
    B on the items both scored, with the paired bootstrap difference B − A.

    Raises PredictionsError when an item has different labels in the two files, or when fewer
    than two classes remain among the items scored in both."""
    first, second = read_predictions(path_a), read_predictions(path_b)
    for item in first.keys() & second.keys():
        if first[item].label != second[item].label:
            raise PredictionsError(
                f"item {item!r} is labelled {_name(first[item].label)} in {path_a} "
                f"but {_name(second[item].label)} in {path_b}",
                code="labels_disagree",
            )
    both = sorted(i for i in first.keys() & second.keys() if None not in (first[i].score, second[i].score))
    labels = np.array([first[i].label for i in both], dtype=np.int64)
    if labels.sum() == 0 or labels.sum() == labels.size:
        raise PredictionsError(
            f"{labels.size} items scored in both files, {int(labels.sum())} of them FAKE: "
            "AUC needs both FAKE and REAL items",
            code="one_class",
        )
    a = np.array([first[i].score for i in both], dtype=np.float64)
    b = np.array([second[i].score for i in both], dtype=np.float64)
    bootstrap = {"resamples": resamples, "level": level, "seed": seed}
    families: dict[str, dict[str, Any]] = {}
    real = labels == 0
    names = [first[i].family for i in both]
    for family in sorted({n for n, fake in zip(names, labels, strict=True) if fake}):
        chosen = real | np.array([n == family for n in names])
        families[family] = _paired(labels[chosen], a[chosen], b[chosen], **bootstrap)
    return {
        "a": str(path_a),
        "b": str(path_b),
        "only_in_a": len(first.keys() - second.keys()),
        "only_in_b": len(second.keys() - first.keys()),
        "unscored": len(first.keys() & second.keys()) - len(both),
        "bootstrap": bootstrap,
        "overall": _paired(labels, a, b, **bootstrap),
        "by_family": families,
    }


def _name(label: int) -> str:
    return "FAKE" if label else "REAL"


def _auc(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def format_comparison(result: dict[str, Any]) -> str:
    """The table ``evaluate --compare`` prints: one row overall, then one per FAKE family (its
    items against every REAL item)."""
    overall = result["overall"]
    level = round(100 * result["bootstrap"]["level"])
    lines = [
        f"A          {result['a']}",
        f"B          {result['b']}",
        f"items      {overall['items']} scored in both (FAKE {overall['fake']}, REAL {overall['real']}); "
        f"left out: {result['only_in_a']} only in A, {result['only_in_b']} only in B, "
        f"{result['unscored']} not scored in both",
        f"{'':<16}  {'FAKE':>5}  {'REAL':>5}  {'AUC A':>9}  {'AUC B':>9}  {'B − A':>8}  "
        f"{f'{level} % interval':>17}  {'B better':>8}",
    ]
    rows = [("overall", overall)] + [(f"  {name}", row) for name, row in result["by_family"].items()]
    for name, row in rows:
        line = f"{name:<16}  {row['fake']:>5}  {row['real']:>5}  "
        line += f"{_auc(row['auc_a']):>9}  {_auc(row['auc_b']):>9}  "
        if row.get("interval") is None:
            line += f"{'undefined':>8}"
        else:
            low, high = row["interval"]
            line += (
                f"{row['difference']:>+8.4f}  {f'{low:+.4f} to {high:+.4f}':>17}  "
                f"{row['share_b_better']:>8.2f}"
            )
        lines.append(line.rstrip())
    lines += [
        f"B − A: paired stratified bootstrap, {result['bootstrap']['resamples']} resamples, "
        "the same resampled items for A and B",
        "B better: the share of resamples where B's AUC is higher",
        "a family: its FAKE items against every REAL item",
    ]
    return "\n".join(lines)
