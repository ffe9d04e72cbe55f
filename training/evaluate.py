"""Evaluation of a checkpoint on labelled face crops or on videos run through the whole pipeline.

Crop folders are scored crop by crop with the inference classifier. ``split="val"`` keeps only
the identity groups that training held out: the split function and its seed and fraction are
those written into the checkpoint by ``train``, so the numbers are on faces the model never saw.

Video folders run every video through ``pipeline.Analyzer`` (decode, detect, track, crop,
classify, aggregate); a video with no face gets no score and is counted, not guessed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from training.datasets import DEFAULT_CACHE_DIR, dataset_kind, read_entries, split_indices
from training.scores import auc_interval, binary_metrics

__all__ = [
    "Evaluation",
    "ItemScore",
    "evaluate",
    "expected_calibration_error",
    "family_metrics",
    "pair_metrics",
    "read_families",
    "read_pairs",
    "verdict_counts",
]


@dataclass
class ItemScore:
    item: str
    group: str
    label: int  # 1 = FAKE
    score: float | None  # P(fake); None when nothing could be scored (no face, failed)
    status: str = "ok"  # ok, no_face, or an error code
    # Videos: the score under every aggregation method, from the same analysis.
    by_method: dict[str, float | None] = field(default_factory=dict)
    # The manipulation family from the metadata's ``family`` (``real`` for REAL items), or
    # "fake"/"real" from the label when the metadata has none.
    family: str = ""


@dataclass
class Evaluation:
    data: str
    kind: str  # crops or videos
    split: str
    split_seed: int
    val_fraction: float
    model: dict[str, Any]
    threshold: float
    items: list[ItemScore]
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        unscored = [i for i in self.items if i.score is None]
        return {
            "data": self.data,
            "kind": self.kind,
            "split": self.split,
            "split_seed": self.split_seed,
            "val_fraction": self.val_fraction,
            "model": self.model,
            "threshold": self.threshold,
            "items": len(self.items),
            "unscored": {
                status: sum(1 for i in unscored if i.status == status)
                for status in sorted({i.status for i in unscored})
            },
            "metrics": self.metrics,
        }


def _checkpoint_split(model_config: Any) -> tuple[float, int]:
    split = (model_config.training or {}).get("split", {})
    return float(split.get("val_fraction", 0.2)), int(split.get("seed", 0))


def _score_crops(
    root: Path, classifier: Any, indices_for: Callable[[list[str]], np.ndarray], cache_dir: str | None
) -> list[ItemScore]:
    from training.datasets import load_crop_folder

    size = classifier.config.input_size
    crop_set = load_crop_folder(root, size=size, cache_dir=cache_dir)
    rows = indices_for(crop_set.groups)
    scores = classifier.predict(crop_set.images[rows]) if len(rows) else np.zeros((0,), np.float32)
    return [
        ItemScore(crop_set.items[r], crop_set.groups[r], int(crop_set.labels[r]), float(s))
        for r, s in zip(rows, scores, strict=True)
    ]


def _score_videos(
    root: Path,
    analyzer: Any,
    indices_for: Callable[[list[str]], np.ndarray],
    say: Callable[[str], None] | None,
) -> list[ItemScore]:
    from pipeline import aggregate
    from training.datasets import resolve_file

    entries = read_entries(root)
    rows = indices_for([e.group for e in entries])
    items = []
    for number, row in enumerate(rows, 1):
        entry = entries[row]
        try:
            result = analyzer.analyze(resolve_file(root, entry.file))
        except PipelineError as exc:
            items.append(ItemScore(entry.file, entry.group, entry.label, None, exc.code))
            status = exc.code
        else:
            status = "no_face" if result.score is None else "ok"
            by_method: dict[str, float | None] = {
                m: aggregate.video_score(result.segments, m) for m in aggregate.METHODS
            }
            items.append(ItemScore(entry.file, entry.group, entry.label, result.score, status, by_method))
        if say:
            score = items[-1].score
            say(f"[{number}/{len(rows)}] {entry.file}: {status}" + ("" if score is None else f" {score:.4f}"))
    return items


def evaluate(
    data: str | Path,
    model_path: str | Path,
    *,
    split: str = "all",
    val_fraction: float | None = None,
    seed: int | None = None,
    device: str = "auto",
    cache_dir: str | None = str(DEFAULT_CACHE_DIR),
    say: Callable[[str], None] | None = None,
    tta_flip: bool = False,
    aggregation: str = "mean",
    pairs: list[tuple[str, str]] | None = None,
) -> Evaluation:
    """Score every item of ``data`` (restricted to ``split``) and compute the metrics at the
    checkpoint's threshold. ``val_fraction``/``seed`` default to those the checkpoint was trained with."""
    from pipeline.model import Classifier

    root = Path(data)
    kind = dataset_kind(read_entries(root))
    classifier = Classifier(model_path, device=device, tta_flip=tta_flip)
    model_config = classifier.config  # loads the checkpoint: a bad file raises ModelError here
    trained_fraction, trained_seed = _checkpoint_split(model_config)
    fraction = trained_fraction if val_fraction is None else val_fraction
    split_seed = trained_seed if seed is None else seed
    if split not in ("all", "train", "val"):
        raise ValueError(f"unknown split {split!r}; use all, train or val")

    def indices_for(groups: list[str]) -> np.ndarray:
        return split_indices(groups, split, val_fraction=fraction, seed=split_seed)

    if kind == "crops":
        items = _score_crops(root, classifier, indices_for, cache_dir)
    else:
        from pipeline import Analyzer
        from pipeline.types import AnalysisConfig

        config = AnalysisConfig(tta_flip=tta_flip, aggregation=aggregation)  # type: ignore[arg-type]
        analyzer = Analyzer(model_path=model_path, device=device, config=config)
        items = _score_videos(root, analyzer, indices_for, say)
    families = read_families(root)
    for item in items:
        item.family = families.get(item.item) or ("fake" if item.label else "real")
    scored = [i for i in items if i.score is not None]
    threshold = float(model_config.threshold)
    labels = np.array([i.label for i in scored], dtype=np.int64)
    scores = np.array([i.score for i in scored], dtype=np.float64)
    metrics = binary_metrics(labels, scores, threshold=threshold)
    metrics["auc_interval"] = _interval(labels, scores)
    metrics["expected_calibration_error"] = (
        expected_calibration_error(labels, scores) if len(scored) else None
    )
    band = model_config.inconclusive_band
    if band is not None:
        inside = (scores >= band[0]) & (scores < band[1])
        outside = ~inside
        metrics["inconclusive_band"] = list(band)
        metrics["inconclusive"] = int(inside.sum())
        metrics["accuracy_outside_band"] = (
            float(np.mean((scores[outside] >= threshold) == labels[outside].astype(bool)))
            if outside.any()
            else None
        )
    metrics["verdicts"] = verdict_counts(labels, scores, threshold, band)
    if kind == "videos":
        metrics["by_aggregation"] = _per_method(items, threshold)
    if families:
        metrics["by_family"] = family_metrics(items, threshold, band)
    if pairs:
        metrics["matched_pairs"] = pair_metrics(items, pairs)
    return Evaluation(
        data=str(root),
        kind=kind,
        split=split,
        split_seed=split_seed,
        val_fraction=fraction,
        model=classifier.describe()
        | {
            "input_size": model_config.input_size,
            "use_srm": model_config.use_srm,
            "aggregation": aggregation if kind == "videos" else None,
            "tta_flip": tta_flip,
        },
        threshold=threshold,
        items=items,
        metrics=metrics,
    )


def verdict_counts(
    labels: np.ndarray, scores: np.ndarray, threshold: float, band: tuple[float, float] | None
) -> dict[str, dict[str, int]]:
    """What a user would have been told: how many FAKE and REAL verdicts were given and how many
    of them were right, and how many items of each class were left inconclusive (none without a
    band)."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    inside = (scores >= band[0]) & (scores < band[1]) if band is not None else np.zeros(len(scores), bool)
    fake = ~inside & (scores >= threshold)
    real = ~inside & (scores < threshold)
    return {
        "fake": {"given": int(fake.sum()), "right": int((fake & (labels == 1)).sum())},
        "real": {"given": int(real.sum()), "right": int((real & (labels == 0)).sum())},
        "inconclusive": {
            "real": int((inside & (labels == 0)).sum()),
            "fake": int((inside & (labels == 1)).sum()),
        },
    }


def _interval(labels: np.ndarray, scores: np.ndarray) -> list[float] | None:
    """The AUC's 95 % stratified-bootstrap interval as a JSON-ready list; None with one class."""
    interval = auc_interval(labels, scores)
    return None if interval is None else list(interval)


def _per_method(items: list[ItemScore], threshold: float) -> dict[str, dict[str, Any]]:
    """The metrics each aggregation method would have given on the same analysed videos."""
    from pipeline.aggregate import METHODS

    table: dict[str, dict[str, Any]] = {}
    for method in METHODS:
        pairs = [(i.label, i.by_method.get(method)) for i in items if i.by_method.get(method) is not None]
        labels = np.array([label for label, _ in pairs], dtype=np.int64)
        scores = np.array([score for _, score in pairs], dtype=np.float64)
        m = binary_metrics(labels, scores, threshold=threshold)
        reals = scores[labels == 0]
        table[method] = {
            "auc": m["auc"],
            "log_loss": m["log_loss"],
            "accuracy": m["accuracy"],
            "real_called_fake": int((reals >= threshold).sum()),
            "real_mean_score": float(reals.mean()) if reals.size else None,
        }
    return table


def read_families(root: str | Path) -> dict[str, str]:
    """``family`` of each file in a dataset's ``metadata.json`` or ``metadata.csv``, where given."""
    root = Path(root)
    families: dict[str, str] = {}
    json_path, csv_path = root / "metadata.json", root / "metadata.csv"
    if csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("family"):
                    families[row["file"]] = row["family"]
    elif json_path.is_file():
        doc = json.loads(json_path.read_text(encoding="utf-8"))
        for name, entry in doc.items():
            if isinstance(entry, dict) and isinstance(entry.get("family"), str):
                families[name] = entry["family"]
    return families


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """Matched pairs from a CSV with the columns ``real,fake`` (file names as the metadata gives
    them): the same footage before and after a manipulation."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"real", "fake"} <= set(reader.fieldnames):
            raise ValueError(f"{path} needs the columns real,fake")
        return [(row["real"], row["fake"]) for row in reader]


def family_metrics(
    items: list[ItemScore], threshold: float, band: tuple[float, float] | None
) -> dict[str, dict[str, Any]]:
    """Per family: AUC of its items against every REAL item with its 95 % bootstrap interval, log
    loss over those, recall (or, for the real family, the share called FAKE), mean score, and the
    share inside the band. The real family has no AUC, so its interval is None."""
    reals = [i for i in items if i.label == 0 and i.score is not None]
    real_scores = np.array([i.score for i in reals], dtype=np.float64)
    table: dict[str, dict[str, Any]] = {}
    for family in sorted({i.family for i in items}, key=lambda f: (f == "real", f)):
        members = [i for i in items if i.family == family]
        scores = np.array([i.score for i in members if i.score is not None], dtype=np.float64)
        is_real = all(i.label == 0 for i in members)
        row: dict[str, Any] = {
            "items": len(members),
            "scored": int(scores.size),
            "mean_score": float(scores.mean()) if scores.size else None,
            "inconclusive_share": (
                float(np.mean((scores >= band[0]) & (scores < band[1]))) if band and scores.size else None
            ),
        }
        called_fake = float(np.mean(scores >= threshold)) if scores.size else None
        if is_real:
            row["false_positive_rate"] = called_fake
            row["called_fake"] = int((scores >= threshold).sum())
            row["auc_interval"] = None
        else:
            labels = np.concatenate([np.ones(scores.size), np.zeros(real_scores.size)])
            pooled = np.concatenate([scores, real_scores])
            m = binary_metrics(labels, pooled, threshold=threshold)
            row |= {
                "auc_vs_real": m["auc"],
                "auc_interval": _interval(labels, pooled),
                "log_loss_with_real": m["log_loss"],
                "recall": called_fake,
                "called_fake": int((scores >= threshold).sum()),
            }
        table[family] = row
    return table


def pair_metrics(items: list[ItemScore], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Score differences (fake − real) over matched pairs, and how often the fake ranks higher."""
    by_name = {i.item: i for i in items}
    rows: list[dict[str, Any]] = []
    differences: list[float] = []
    for real, fake in pairs:
        real_item, fake_item = by_name.get(real), by_name.get(fake)
        if real_item is None or fake_item is None:
            raise ValueError(f"pair {real} / {fake}: not in the evaluated data")
        real_score, fake_score = real_item.score, fake_item.score
        difference = None if real_score is None or fake_score is None else fake_score - real_score
        if difference is not None:
            differences.append(difference)
        rows.append(
            {
                "real": real,
                "fake": fake,
                "real_score": real_score,
                "fake_score": fake_score,
                "difference": difference,
            }
        )
    return {
        "pairs": rows,
        "scored": len(differences),
        "fake_above_real": sum(1 for d in differences if d > 0),
        "mean_difference": float(np.mean(differences)) if differences else None,
    }


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> float:
    """Mean |observed FAKE rate − mean score| over equal-width score bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        chosen = index == b
        if chosen.any():
            error += chosen.mean() * abs(float(labels[chosen].mean()) - float(scores[chosen].mean()))
    return float(error)
