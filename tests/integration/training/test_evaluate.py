"""`deepfakestream evaluate` on tiny crop and video folders: metrics match a count by hand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli import main
from pipeline.model import DeepfakeClassifier, ModelConfig, save_checkpoint
from tests.utils.media import make_face_video
from tests.utils.training import make_crop_folder
from training.datasets import identity_split, read_entries

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(
        input_size=48,
        threshold=0.5,
        trained=True,
        version="test",
        training={"split": {"seed": 3, "val_fraction": 0.4}},
    )
    model = DeepfakeClassifier(config)
    # Spread the scores of this untrained network so both predicted classes occur.
    with torch.no_grad():
        model.fc.weight.mul_(50.0)
    return save_checkpoint(model.eval(), tmp_path_factory.mktemp("model") / "tiny.safetensors")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_crop_folder_metrics_equal_a_count_by_hand(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_crop_folder(tmp_path / "crops", identities=20, fakes_per_identity=2)
    out = tmp_path / "out"
    code = main(
        [
            "evaluate",
            "--data",
            str(data),
            "--model",
            str(checkpoint),
            "--split",
            "val",
            "--json",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    rows = _rows(out / "predictions.csv")
    # Exactly the held-out identity groups, by the checkpoint's own seed and fraction.
    entries = read_entries(data)
    _, val = identity_split([e.group for e in entries], val_fraction=0.4, seed=3)
    assert sorted(r["item"] for r in rows) == sorted(entries[i].file for i in val)
    assert report["split_seed"] == 3 and report["val_fraction"] == 0.4
    labels = np.array([r["label"] == "FAKE" for r in rows])
    scores = np.array([float(r["score"]) for r in rows])
    predicted = scores >= 0.5
    tp, fp = int(np.sum(predicted & labels)), int(np.sum(predicted & ~labels))
    tn, fn = int(np.sum(~predicted & ~labels)), int(np.sum(~predicted & labels))
    m = report["metrics"]
    assert m["confusion_matrix"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    assert m["accuracy"] == pytest.approx((tp + tn) / len(rows))
    if tp + fp:
        assert m["precision"] == pytest.approx(tp / (tp + fp))
    assert m["recall"] == pytest.approx(tp / (tp + fn))
    pairs = [(f, r) for f in scores[labels] for r in scores[~labels]]
    auc = np.mean([1.0 if f > r else 0.5 if f == r else 0.0 for f, r in pairs])
    assert m["auc"] == pytest.approx(auc)
    low, high = m["auc_interval"]
    assert 0.0 <= low <= m["auc"] <= high <= 1.0
    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    assert m["log_loss"] == pytest.approx(
        -np.mean(np.where(labels, np.log(clipped), np.log(1 - clipped))), rel=1e-4
    )
    assert (out / "roc.png").stat().st_size > 1000
    assert (out / "reliability.png").stat().st_size > 1000
    bins = np.clip(np.digitize(scores, np.linspace(0, 1, 11)[1:-1]), 0, 9)
    ece = sum(
        (bins == b).mean() * abs(labels[bins == b].mean() - scores[bins == b].mean())
        for b in range(10)
        if (bins == b).any()
    )
    assert m["expected_calibration_error"] == pytest.approx(ece, abs=1e-6)
    assert [r["predicted"] for r in rows] == ["FAKE" if p else "REAL" for p in predicted]


def test_human_report_lists_every_metric(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_crop_folder(tmp_path / "crops", identities=6)
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(data),
                "--model",
                str(checkpoint),
                "--device",
                "cpu",
                "--cache-dir",
                str(tmp_path / "cache"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    for label in (
        "AUC",
        "log loss",
        "F1",
        "precision",
        "recall",
        "accuracy",
        "confusion matrix",
        "true FAKE",
    ):
        assert label in text


def test_real_only_folder_reports_false_positive_rate_without_auc(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_crop_folder(tmp_path / "reals", identities=6, only_real=True)
    out = tmp_path / "out"
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(data),
                "--model",
                str(checkpoint),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--cache-dir",
                str(tmp_path / "cache"),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "AUC        undefined (needs both FAKE and REAL items)" in captured.out
    rows = _rows(out / "predictions.csv")
    false_positives = sum(r["predicted"] == "FAKE" for r in rows)
    assert f"FPR        {false_positives / 6:.4f}" in captured.out
    assert not (out / "roc.png").exists() and "no ROC curve" in captured.err


def test_video_folder_runs_the_whole_pipeline(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    videos = tmp_path / "videos"
    make_face_video(videos / "a.mp4", seconds=1.0, width=320, height=240)
    make_face_video(videos / "b.mp4", seconds=1.0, width=320, height=240)
    make_face_video(videos / "c.mp4", seconds=1.0, width=320, height=240, faces=0)
    (videos / "metadata.json").write_text(
        json.dumps(
            {
                "a.mp4": {"label": "REAL"},
                "b.mp4": {"label": "FAKE", "original": "a.mp4"},
                "c.mp4": {"label": "REAL"},
            }
        )
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(videos),
                "--model",
                str(checkpoint),
                "--json",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    rows = {r["item"]: r for r in _rows(out / "predictions.csv")}
    assert rows["a.mp4"]["status"] == "ok" and 0.0 <= float(rows["a.mp4"]["score"]) <= 1.0
    assert rows["c.mp4"]["status"] == "no_face" and rows["c.mp4"]["score"] == ""
    assert report["kind"] == "videos" and report["unscored"] == {"no_face": 1}
    assert report["metrics"]["count"] == 2
    by_method = report["metrics"]["by_aggregation"]
    assert set(by_method) == {"mean", "confident", "track_top"}
    # One face moving across the frames: the mean of all frames never exceeds the top half's.
    assert by_method["mean"]["real_mean_score"] <= by_method["track_top"]["real_mean_score"] + 1e-9


def test_bad_inputs_exit_with_typed_errors(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_crop_folder(tmp_path / "crops", identities=2)
    assert main(["evaluate", "--data", str(data), "--model", str(tmp_path / "none.safetensors")]) == 9
    assert "model_not_found" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tmp_path / "nowhere"), "--model", str(checkpoint)]) == 3
    assert "dataset folder not found" in capsys.readouterr().err


def test_families_and_matched_pairs_are_reported(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_crop_folder(tmp_path / "crops", identities=6, fakes_per_identity=1)
    rows = _rows(data / "metadata.csv")
    with open(data / "metadata.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*rows[0].keys(), "family"])
        writer.writeheader()
        for number, row in enumerate(rows):
            family = "real" if row["label"] == "REAL" else ("lip_sync" if number % 4 == 1 else "face_swap")
            writer.writerow({**row, "family": family})
    first_real = next(r["file"] for r in rows if r["label"] == "REAL")
    first_fake = next(r["file"] for r in rows if r["label"] == "FAKE")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"real,fake\n{first_real},{first_fake}\n")
    out = tmp_path / "out"
    argv = ["evaluate", "--data", str(data), "--model", str(checkpoint), "--device", "cpu"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--pairs", str(pairs), "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "lip_sync" in text and "face_swap" in text and "matched pairs: fake above real in" in text
    assert "AUC 95 %" in text and "stratified bootstrap" in text
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    by_family = metrics["by_family"]
    assert set(by_family) == {"real", "lip_sync", "face_swap"}
    assert by_family["real"]["items"] == 6
    assert by_family["lip_sync"]["items"] + by_family["face_swap"]["items"] == 6
    assert by_family["real"]["auc_interval"] is None and len(by_family["face_swap"]["auc_interval"]) == 2
    # Every scored item got a verdict or was left inconclusive, each counted once.
    verdicts = metrics["verdicts"]
    told = verdicts["fake"]["given"] + verdicts["real"]["given"]
    assert told + sum(verdicts["inconclusive"].values()) == 12
    assert sum(verdicts["inconclusive"].values()) == metrics.get("inconclusive", 0)
    assert verdicts["fake"]["given"] == metrics["confusion_matrix"]["tp"] + metrics["confusion_matrix"]["fp"]
    assert "verdicts   FAKE" in text
    predictions = {r["item"]: r for r in _rows(out / "predictions.csv")}
    pair = metrics["matched_pairs"]["pairs"][0]
    assert pair["difference"] == pytest.approx(
        float(predictions[first_fake]["score"]) - float(predictions[first_real]["score"]), abs=1e-5
    )
    assert predictions[first_real]["family"] == "real"
    pairs.write_text(f"real,fake\n{first_real},nowhere.jpg\n")
    assert main([*argv[:-2]]) == 2
    assert "nowhere.jpg" in capsys.readouterr().err
