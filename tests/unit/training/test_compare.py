"""`deepfakestream evaluate --compare A.csv B.csv`: two predictions files, joined on the item."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.cli import main

HEADER = ["item", "group", "label", "family", "score", "predicted", "status"]


def _write(path: Path, rows: list[tuple[str, str, str, str, str]]) -> Path:
    """Rows of (item, label, family, score, status), as ``evaluate --out`` writes them."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for item, label, family, score, status in rows:
            predicted = "" if not score else ("FAKE" if float(score) >= 0.5 else "REAL")
            writer.writerow([item, item, label, family, score, predicted, status])
    return path


def _pair(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[int, str, float, float]]]:
    """A and B on 30 shared items (B ranks the fakes better), plus rows each file alone has, and an
    item B could not score."""
    rng = np.random.default_rng(0)
    truth: dict[str, tuple[int, str, float, float]] = {}
    rows_a, rows_b = [], []
    for n in range(30):
        label = int(n < 14)
        family = ("face_swap" if n % 2 else "lip_sync") if label else "real"
        a, b = float(rng.uniform(0, 1) + 0.1 * label), float(rng.uniform(0, 1) + 0.5 * label)
        a, b = round(min(a, 1.0), 6), round(min(b, 1.0), 6)
        truth[f"v{n}.mp4"] = (label, family, a, b)
        name = "FAKE" if label else "REAL"
        rows_a.append((f"v{n}.mp4", name, family, f"{a:.6f}", "ok"))
        rows_b.append((f"v{n}.mp4", name, family, f"{b:.6f}", "ok"))
    rows_a += [
        ("only_a.mp4", "FAKE", "face_swap", "0.900000", "ok"),
        ("gone.mp4", "REAL", "real", "0.1", "ok"),
    ]
    rows_b += [("only_b.mp4", "REAL", "real", "0.100000", "ok"), ("gone.mp4", "REAL", "real", "", "no_face")]
    return _write(tmp_path / "a.csv", rows_a), _write(tmp_path / "b.csv", rows_b), truth


def test_compare_prints_both_aucs_and_the_paired_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, truth = _pair(tmp_path)
    assert main(["evaluate", "--compare", str(a), str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    labels = np.array([t[0] for t in truth.values()])
    scores_a = np.array([t[2] for t in truth.values()])
    scores_b = np.array([t[3] for t in truth.values()])
    auc_a, auc_b = roc_auc_score(labels, scores_a), roc_auc_score(labels, scores_b)
    assert lines[2] == (
        "items      30 scored in both (FAKE 14, REAL 16); "
        "left out: 1 only in A, 1 only in B, 1 not scored in both"
    )
    assert "B − A" in lines[3] and "95 % interval" in lines[3] and "B better" in lines[3]
    overall = lines[4].split()
    assert overall[:5] == ["overall", "14", "16", f"{auc_a:.4f}", f"{auc_b:.4f}"]
    assert overall[5] == f"{auc_b - auc_a:+.4f}"
    low, high = float(overall[6]), float(overall[8])
    assert overall[7] == "to" and low < auc_b - auc_a < high
    assert 0.0 <= float(overall[9]) <= 1.0
    swap = [t for t in truth.values() if t[1] in ("face_swap", "real")]
    swap_auc_a = roc_auc_score([t[0] for t in swap], [t[2] for t in swap])
    assert lines[5].split()[:4] == ["face_swap", "7", "16", f"{swap_auc_a:.4f}"]
    assert lines[6].split()[0] == "lip_sync" and len(lines) == 10


def test_compare_as_json_matches_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, _ = _pair(tmp_path)
    assert main(["evaluate", "--compare", str(a), str(b), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["by_family"]) == {"face_swap", "lip_sync"}
    overall = result["overall"]
    assert overall["difference"] == pytest.approx(overall["auc_b"] - overall["auc_a"])
    assert overall["interval"][0] < overall["difference"] < overall["interval"][1]
    assert main(["evaluate", "--compare", str(a), str(a), "--json"]) == 0
    itself = json.loads(capsys.readouterr().out)["overall"]
    assert (itself["difference"], itself["interval"], itself["share_b_better"]) == (0.0, [0.0, 0.0], 0.0)


def test_labels_that_disagree_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(
        tmp_path / "a.csv",
        [("x.mp4", "FAKE", "face_swap", "0.9", "ok"), ("y.mp4", "REAL", "real", "0.1", "ok")],
    )
    b = _write(
        tmp_path / "b.csv", [("x.mp4", "REAL", "real", "0.9", "ok"), ("y.mp4", "REAL", "real", "0.1", "ok")]
    )
    assert main(["evaluate", "--compare", str(a), str(b)]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error [labels_disagree]: item 'x.mp4' is labelled FAKE in" in captured.err


def test_one_class_left_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The only FAKE item is unscored in B, so only REAL items remain.
    a = _write(
        tmp_path / "a.csv",
        [("x.mp4", "FAKE", "face_swap", "0.9", "ok"), ("y.mp4", "REAL", "real", "0.1", "ok")],
    )
    b = _write(
        tmp_path / "b.csv",
        [("x.mp4", "FAKE", "face_swap", "", "no_face"), ("y.mp4", "REAL", "real", "0.2", "ok")],
    )
    assert main(["evaluate", "--compare", str(a), str(b)]) == 3
    assert "error [one_class]: 1 items scored in both files, 0 of them FAKE" in capsys.readouterr().err


def test_missing_or_malformed_files_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _, _ = _pair(tmp_path)
    assert main(["evaluate", "--compare", str(a), str(tmp_path / "none.csv")]) == 3
    assert (
        f"error [file_not_found]: predictions file not found: {tmp_path / 'none.csv'}"
        in capsys.readouterr().err
    )
    other = tmp_path / "other.csv"
    other.write_text("real,fake\na.mp4,b.mp4\n")
    assert main(["evaluate", "--compare", str(a), str(other)]) == 3
    err = capsys.readouterr().err
    assert "error [invalid_predictions]" in err and "no column item, label, score, status" in err
    bad = _write(tmp_path / "bad.csv", [("x.mp4", "MAYBE", "real", "0.5", "ok")])
    assert main(["evaluate", "--compare", str(a), str(bad)]) == 3
    assert "label 'MAYBE' is neither FAKE nor REAL" in capsys.readouterr().err


def test_compare_needs_no_data_and_data_is_needed_otherwise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, _ = _pair(tmp_path)
    assert main(["evaluate", "--compare", str(a), str(b), "--data", str(tmp_path)]) == 2
    assert "--compare reads two predictions files and takes no --data" in capsys.readouterr().err
    assert main(["evaluate"]) == 2
    assert "--data DIR is required (unless --compare A.csv B.csv)" in capsys.readouterr().err
