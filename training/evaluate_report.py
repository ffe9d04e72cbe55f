"""An evaluation's outputs: the printed summary, predictions.csv, metrics.json, ROC and reliability plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluate import Evaluation
from training.scores import binary_metrics, roc_curve

__all__ = ["format_interval", "format_report", "write_outputs"]


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "undefined"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_interval(interval: Any, digits: int = 2) -> str:
    """``0.61–0.84``; ``undefined`` for None."""
    if interval is None:
        return "undefined"
    low, high = interval
    return f"{low:.{digits}f}–{high:.{digits}f}"


def format_report(evaluation: Evaluation) -> str:
    """The human-readable summary ``deepfakestream evaluate`` prints."""
    m = evaluation.metrics
    model = evaluation.model
    split = evaluation.split
    if split != "all":
        split += f" (identity groups, seed {evaluation.split_seed}, val fraction {evaluation.val_fraction})"
    lines = [
        f"data       {evaluation.data} ({evaluation.kind}, split {split})",
        f"model      {model.get('name')} {model.get('version')} sha256 {str(model.get('sha256'))[:12]}"
        f"{'' if model.get('trained') else '  UNTRAINED MODEL'}",
        f"items      {len(evaluation.items)} scored {m['count']} "
        f"(FAKE {m['positives']}, REAL {m['negatives']})",
    ]
    unscored = evaluation.to_dict()["unscored"]
    if unscored:
        lines.append("unscored   " + ", ".join(f"{k} {v}" for k, v in unscored.items()))
    if m["auc"] is None:
        auc_note = " (needs both FAKE and REAL items)"
    elif m.get("auc_interval") is not None:
        auc_note = f" (95 % interval {format_interval(m['auc_interval'])}, stratified bootstrap)"
    else:
        auc_note = ""
    lines += [
        f"threshold  {evaluation.threshold:.4f}",
        f"AUC        {_fmt(m['auc'])}{auc_note}",
        f"log loss   {_fmt(m['log_loss'])}",
        f"F1         {_fmt(m['f1'])}",
        f"precision  {_fmt(m['precision'])}",
        f"recall     {_fmt(m['recall'])}",
        f"accuracy   {_fmt(m['accuracy'])}",
        f"FPR        {_fmt(m['false_positive_rate'])} (REAL items called FAKE)",
        f"ECE        {_fmt(m.get('expected_calibration_error'))} (10 bins)",
        "confusion matrix (rows true, columns predicted)",
        "              pred REAL  pred FAKE",
        f"  true REAL  {m['confusion_matrix']['tn']:>9}  {m['confusion_matrix']['fp']:>9}",
        f"  true FAKE  {m['confusion_matrix']['fn']:>9}  {m['confusion_matrix']['tp']:>9}",
    ]
    if m.get("inconclusive_band") is not None:
        low, high = m["inconclusive_band"]
        lines.append(
            f"band       [{low:.4f}, {high:.4f}): {m['inconclusive']} inconclusive, "
            f"accuracy outside {_fmt(m['accuracy_outside_band'])}"
        )
    verdicts = m.get("verdicts")
    if verdicts:
        fake, real, unsure = verdicts["fake"], verdicts["real"], verdicts["inconclusive"]
        lines.append(
            f"verdicts   FAKE {fake['given']} ({fake['right']} right), REAL {real['given']} "
            f"({real['right']} right), inconclusive {unsure['real'] + unsure['fake']} "
            f"({unsure['real']} REAL, {unsure['fake']} FAKE)"
        )
    if m.get("by_aggregation"):
        lines.append("aggregation      AUC        log loss   accuracy   REAL→FAKE  REAL mean")
        for method, row in m["by_aggregation"].items():
            lines.append(
                f"  {method:<12}  {_fmt(row['auc']):>9}  {_fmt(row['log_loss']):>9}  "
                f"{_fmt(row['accuracy']):>9}  {row['real_called_fake']:>9}  {_fmt(row['real_mean_score']):>9}"
            )
    if m.get("by_family"):
        lines.append(
            f"{'family':<16}  {'items':>5}  {'AUC vs real':>11}  {'AUC 95 %':>9}  {'log loss':>9}  "
            f"{'recall/FPR':>10}  {'mean score':>10}  {'inconclusive':>12}"
        )
        for family, row in m["by_family"].items():
            rate = row.get("recall", row.get("false_positive_rate"))
            lines.append(
                f"  {family:<14}  {row['items']:>5}  {_fmt(row.get('auc_vs_real')):>11}  "
                f"{format_interval(row.get('auc_interval')):>9}  "
                f"{_fmt(row.get('log_loss_with_real')):>9}  {_fmt(rate):>10}  "
                f"{_fmt(row['mean_score']):>10}  {_fmt(row['inconclusive_share']):>12}"
            )
    if m.get("matched_pairs"):
        pairs = m["matched_pairs"]
        lines.append(
            f"matched pairs: fake above real in {pairs['fake_above_real']} of {pairs['scored']}, "
            f"mean difference {_fmt(pairs['mean_difference'])}"
        )
        for row in pairs["pairs"]:
            lines.append(
                f"  {_fmt(row['fake_score'])} − {_fmt(row['real_score'])} = {_fmt(row['difference'])}  "
                f"{row['fake']}"
            )
    return "\n".join(lines)


def write_outputs(evaluation: Evaluation, out_dir: str | Path) -> dict[str, Path]:
    """``predictions.csv`` (one row per item), ``metrics.json`` and, when AUC is defined, ``roc.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    csv_path = out / "predictions.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "group", "label", "family", "score", "predicted", "status"])
        for item in evaluation.items:
            predicted = (
                "" if item.score is None else ("FAKE" if item.score >= evaluation.threshold else "REAL")
            )
            score = "" if item.score is None else f"{item.score:.6f}"
            writer.writerow(
                [
                    item.item,
                    item.group,
                    "FAKE" if item.label else "REAL",
                    item.family,
                    score,
                    predicted,
                    item.status,
                ]
            )
    written["predictions"] = csv_path
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(evaluation.to_dict(), indent=1), encoding="utf-8")
    written["metrics"] = metrics_path
    if evaluation.metrics.get("auc") is not None:
        written["roc"] = _plot_roc(evaluation, out / "roc.png")
        written["reliability"] = _plot_reliability(evaluation, out / "reliability.png")
    return written


def _plot_reliability(evaluation: Evaluation, path: Path, bins: int = 10) -> Path:
    """Observed FAKE rate against mean predicted P(fake) per score bin: on the diagonal when
    the scores are calibrated probabilities."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    scored = [i for i in evaluation.items if i.score is not None]
    labels = np.array([i.label for i in scored], dtype=np.float64)
    scores = np.array([i.score for i in scored], dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    predicted, observed, counts = [], [], []
    for b in range(bins):
        chosen = index == b
        if chosen.any():
            predicted.append(scores[chosen].mean())
            observed.append(labels[chosen].mean())
            counts.append(int(chosen.sum()))
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(5, 6), dpi=100, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="calibrated")
    top.plot(
        predicted, observed, marker="o", label=f"ECE {evaluation.metrics['expected_calibration_error']:.4f}"
    )
    top.set_ylabel("observed FAKE rate")
    top.set_title(f"Reliability: {Path(evaluation.data).name} ({evaluation.split})")
    top.legend(loc="upper left")
    bottom.bar(
        [(edges[i] + edges[i + 1]) / 2 for i in range(bins)], np.bincount(index, minlength=bins), width=0.09
    )
    bottom.set_xlabel("predicted P(fake)")
    bottom.set_ylabel("items")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _plot_roc(evaluation: Evaluation, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    from matplotlib import pyplot as plt

    scored = [i for i in evaluation.items if i.score is not None]
    labels = np.array([i.label for i in scored])
    scores = np.array([i.score for i in scored], dtype=np.float64)
    fpr, tpr, _ = roc_curve(labels, scores)
    at = binary_metrics(labels, scores, threshold=evaluation.threshold)
    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    axes.plot(fpr, tpr, label=f"AUC {evaluation.metrics['auc']:.4f}")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.scatter(
        [at["false_positive_rate"]],
        [at["recall"]],
        color="red",
        zorder=3,
        label=f"threshold {evaluation.threshold:.3f}",
    )
    axes.set_xlabel("false-positive rate")
    axes.set_ylabel("true-positive rate")
    axes.set_title(f"ROC: {Path(evaluation.data).name} ({evaluation.split})")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
