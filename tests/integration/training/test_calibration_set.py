"""Exports of one run calibrated on validation alone and on validation plus self-blends."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from pipeline.model import load_checkpoint, save_checkpoint
from tests.utils.training import make_crop_folder, tiny_run_config
from training.config import TrainConfig
from training.datasets import identity_split, read_entries
from training.train import export_best, train

pytestmark = pytest.mark.integration

# The run's settings, as the command line gives them (everything else at its default).
_FLAGS = [
    *("--input-size", "32", "--epochs", "2", "--batch-size", "8", "--sbi-ratio", "0.3"),
    *("--sbi-only", "--no-sbi-landmarks", "--val-fraction", "0.3", "--schedule", "flat"),
    *("--snapshot-every", "1", "--device", "cpu", "--no-progress"),
]


# This module's run (``tiny_run_config`` places it and sets 32 px on the CPU).
_SETTINGS: dict[str, object] = {
    "epochs": 2,
    "batch_size": 8,
    "sbi_ratio": 0.3,
    "sbi_only": True,
    "sbi_landmarks": False,
    "val_fraction": 0.3,
    "schedule": "flat",
    "snapshot_every": 1,
}


def _config(folder: Path, data: Path, **changes: object) -> TrainConfig:
    return tiny_run_config(folder, data, **{**_SETTINGS, **changes})


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crop_folder(tmp_path_factory.mktemp("data") / "crops", identities=24, fakes_per_identity=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, crops: Path) -> Path:
    folder = tmp_path_factory.mktemp("calib")
    train(_config(folder, crops), say=lambda _: None)
    return folder


def _validation_counts(crops: Path) -> tuple[int, int]:
    entries = read_entries(crops)
    _, val_rows = identity_split([e.group for e in entries], val_fraction=0.3, seed=0)
    labels = np.array([entries[row].label for row in val_rows])
    return int((labels == 0).sum()), int((labels == 1).sum())


def _run_files(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_self_blends_join_the_calibration_and_change_it(run: Path, crops: Path) -> None:
    before = _run_files(run / "run")
    plain = export_best(_config(run, crops, out=str(run / "val.safetensors")), say=lambda _: None)
    blended = export_best(
        _config(run, crops, out=str(run / "blends.safetensors"), calibration="val+self-blends"),
        say=lambda _: None,
    )
    assert _run_files(run / "run") == before
    reals, fakes = _validation_counts(crops)
    assert reals > 0 and fakes > 0
    plain_meta = load_checkpoint(plain.checkpoint).config
    blended_meta = load_checkpoint(blended.checkpoint).config
    assert plain_meta.metrics["calibration_set"] == "val" and plain_meta.training["calibration"] == "val"
    assert plain_meta.metrics["calibration_items"] == {"real": reals, "fake": fakes, "self_blends": 0}
    assert blended_meta.metrics["calibration_set"] == "val+self-blends"
    assert blended_meta.training["calibration"] == "val+self-blends"
    assert blended_meta.metrics["calibration_items"] == {"real": reals, "fake": fakes, "self_blends": reals}
    assert "self-blend" in blended_meta.training["threshold_rule"]
    # Fitted on other items: another temperature, offset or threshold.
    fitted = (plain_meta.temperature, plain_meta.logit_offset, plain_meta.threshold)
    assert (blended_meta.temperature, blended_meta.logit_offset, blended_meta.threshold) != fitted
    # The metrics stay those of the validation split: same weights, same items, same ranking.
    for meta in (plain_meta, blended_meta):
        assert meta.metrics["split"] == "val"
        assert sum(meta.metrics["confusion_matrix"].values()) == reals + fakes
        assert meta.inconclusive_band is not None
        low, high = meta.inconclusive_band
        assert low <= meta.threshold <= high
    assert blended_meta.metrics["auc"] == pytest.approx(plain_meta.metrics["auc"], abs=1e-3)


def test_cli_calibration_on_an_existing_run(
    run: Path, crops: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _run_files(run / "run")
    common = ["train", "--data", str(crops), "--run-dir", str(run / "run"), "--cache-dir", str(run / "cache")]
    best = run / "cli-best.safetensors"
    code = main([*common, *_FLAGS, "--out", str(best), "--export-best", "--calibration", "val+self-blends"])
    assert code == 0, capsys.readouterr().err
    assert load_checkpoint(best).config.metrics["calibration_set"] == "val+self-blends"
    average = run / "cli-average.safetensors"
    code = main(
        [
            *common,
            *_FLAGS,
            "--out",
            str(average),
            "--average-snapshots",
            ":",
            "--bn-batches",
            "2",
            "--calibration",
            "val+self-blends",
        ]
    )
    assert code == 0, capsys.readouterr().err
    meta = load_checkpoint(average).config
    assert meta.metrics["calibration_set"] == "val+self-blends" and meta.training["averaged"]
    assert meta.metrics["calibration_items"]["self_blends"] == _validation_counts(crops)[0]
    # Averaging adds its averaged weights to the run directory; nothing there changes.
    after = _run_files(run / "run")
    assert {name: after[name] for name in before} == before
    with pytest.raises(SystemExit) as caught:
        main([*common, *_FLAGS, "--export-best", "--calibration", "bogus"])
    assert caught.value.code == 2
    assert "--calibration" in capsys.readouterr().err


def test_calibrate_refits_a_checkpoint_as_its_export_would(
    run: Path, crops: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import load_file

    plain = export_best(_config(run, crops, out=str(tmp_path / "val.safetensors")), say=lambda _: None)
    blended = export_best(
        _config(run, crops, out=str(tmp_path / "blends.safetensors"), calibration="val+self-blends"),
        say=lambda _: None,
    )
    out = tmp_path / "recalibrated.safetensors"
    code = main(
        [
            "calibrate",
            *("--model", str(plain.checkpoint), "--data", str(crops), "--out", str(out)),
            *("--cache-dir", str(run / "cache"), "--version", "9.9.9"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "threshold" in capsys.readouterr().out
    again, exported = load_checkpoint(out).config, load_checkpoint(blended.checkpoint).config
    # The same weights refitted on the same set as an export with --calibration val+self-blends.
    for name in ("temperature", "logit_offset", "threshold"):
        assert getattr(again, name) == pytest.approx(getattr(exported, name), abs=2e-3), name
    assert again.inconclusive_band == pytest.approx(exported.inconclusive_band, abs=2e-3)
    assert again.metrics["calibration_items"] == exported.metrics["calibration_items"]
    assert again.version == "9.9.9" and again.training["calibration"] == "val+self-blends"
    source = load_checkpoint(plain.checkpoint).config
    assert again.training["recalibrated"]["previous"]["threshold"] == source.threshold
    assert again.training["recalibrated"]["from"]["version"] == source.version
    assert again.training["split"] == source.training["split"]
    weights, original = load_file(str(out)), load_file(str(plain.checkpoint))
    assert weights.keys() == original.keys()
    assert all(bool((weights[k] == original[k]).all()) for k in weights)


def test_calibrate_refuses_other_data_and_overwriting(
    run: Path, crops: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = export_best(_config(run, crops, out=str(tmp_path / "model.safetensors")), say=lambda _: None)
    other = make_crop_folder(tmp_path / "other", identities=8, fakes_per_identity=1, seed=5)
    common = ["calibrate", "--model", str(model.checkpoint), "--cache-dir", str(run / "cache")]
    assert main([*common, "--data", str(other), "--out", str(tmp_path / "x.safetensors")]) == 12
    assert "calibration_data_mismatch" in capsys.readouterr().err
    assert main([*common, "--data", str(crops), "--out", str(model.checkpoint)]) == 12
    assert "invalid_arguments" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
    assert main([*common, "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "y.safetensors")]) != 0
    assert not (tmp_path / "y.safetensors").exists()
    # A checkpoint that does not say which faces it was validated on cannot be recalibrated.
    untrained = tmp_path / "untrained.safetensors"
    bare = load_checkpoint(model.checkpoint)
    bare.config = dataclasses.replace(bare.config, training={})
    save_checkpoint(bare, untrained)
    assert (
        main(
            [
                *common[:2],
                str(untrained),
                *common[3:],
                "--data",
                str(crops),
                "--out",
                str(tmp_path / "z.safetensors"),
            ]
        )
        == 12
    )
    assert "calibration_split_unknown" in capsys.readouterr().err
