"""A few training steps on a tiny generated crop folder: the loss falls, the checkpoint loads, runs resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.cli import main
from pipeline.model import file_sha256, load_checkpoint
from tests.utils.training import make_crop_folder, tiny_run_config
from training.config import TrainConfig
from training.errors import TrainingError
from training.train import train

pytestmark = pytest.mark.integration


# This module's run (``tiny_run_config`` places it and sets 32 px on the CPU).
_SETTINGS: dict[str, object] = {
    "epochs": 8,
    "batch_size": 16,
    "lr": 3e-3,
    "sbi_ratio": 0.0,
    "augment_strength": 0.0,
    "val_fraction": 0.3,
    "save_every": 5,
}


def _config(tmp_path: Path, data: Path, **changes: object) -> TrainConfig:
    return tiny_run_config(tmp_path, data, **{**_SETTINGS, **changes})


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crop_folder(tmp_path_factory.mktemp("data") / "crops", identities=16, fakes_per_identity=2)


def test_loss_falls_and_checkpoint_loads(tmp_path: Path, crops: Path) -> None:
    torch.set_num_threads(2)
    config = _config(tmp_path, crops)
    result = train(config, say=lambda _: None)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, 9))
    assert log[-1]["train_loss"] < 0.6 * log[0]["train_loss"], log
    model = load_checkpoint(result.checkpoint)
    meta = model.config
    assert meta.trained and meta.input_size == 32 and meta.use_srm
    assert meta.threshold == pytest.approx(result.threshold) and 0.0 <= meta.threshold <= 1.0
    assert meta.metrics["split"] == "val" and meta.metrics["auc"] is not None
    assert len(meta.training["manifest_sha256"]) == 64
    assert meta.training["split"]["val_fraction"] == 0.3
    assert "Youden" in meta.training["threshold_rule"]
    assert meta.metrics["auc"] > 0.5


def test_resume_continues_where_the_run_stopped(tmp_path: Path, crops: Path) -> None:
    stopped = train(_config(tmp_path, crops, epochs=3, max_steps=3), say=lambda _: None)
    assert stopped.steps == 3
    state = json.loads((tmp_path / "run" / "last.json").read_text())
    assert state["global_step"] == 3 and state["epoch"] == 1 and state["step_in_epoch"] == 1
    resumed = train(_config(tmp_path, crops, epochs=3), resume=True, say=lambda _: None)
    assert resumed.epochs_done == 3 and resumed.steps == 6
    # Randomness comes from (seed, epoch, step): an uninterrupted run ends with the same weights.
    fresh = train(_config(tmp_path / "fresh", crops, epochs=3), say=lambda _: None)
    resumed_weights = load_checkpoint(resumed.checkpoint).state_dict()
    fresh_weights = load_checkpoint(fresh.checkpoint).state_dict()
    assert fresh.steps == resumed.steps
    for key, value in fresh_weights.items():
        assert torch.allclose(value.float(), resumed_weights[key].float(), atol=1e-5), key
    # A shorter budget on resume: the schedule is replayed to the current step and noted.
    train(_config(tmp_path / "cut", crops, epochs=4, max_steps=3), say=lambda _: None)
    cut = train(_config(tmp_path / "cut", crops, epochs=2), resume=True, say=lambda _: None)
    assert cut.epochs_done == 2 and cut.steps == 4
    changes = load_checkpoint(cut.checkpoint).config.training["schedule_changes"]
    assert changes == [{"at_step": 3, "epochs_from": 4, "epochs_to": 2}]
    with pytest.raises(TrainingError, match="different settings"):
        train(_config(tmp_path, crops, epochs=3, lr=1e-2), resume=True, say=lambda _: None)


def test_self_blending_and_no_srm_run(tmp_path: Path, crops: Path) -> None:
    result = train(
        _config(tmp_path, crops, epochs=1, sbi_ratio=0.5, augment_strength=1.0, use_srm=False),
        say=lambda _: None,
    )
    model = load_checkpoint(result.checkpoint)
    assert model.srm is None and model.config.training["sbi_ratio"] == 0.5


def test_init_from_starts_with_the_checkpoints_weights(tmp_path: Path, crops: Path) -> None:
    first = train(_config(tmp_path / "a", crops, epochs=2), say=lambda _: None)
    before = dict(load_checkpoint(first.checkpoint).named_parameters())
    # One step at a vanishing rate: the weights are the source's (batch-norm statistics aside),
    # and where they came from is recorded.
    copied = train(
        _config(tmp_path / "b", crops, epochs=1, max_steps=1, lr=1e-12, init_from=str(first.checkpoint)),
        say=lambda _: None,
    )
    after = load_checkpoint(copied.checkpoint)
    after_parameters = dict(after.named_parameters())
    for key, value in before.items():
        assert torch.allclose(value, after_parameters[key], atol=1e-6), key
    assert after.config.training["init_from"]["sha256"] == file_sha256(first.checkpoint)
    assert train(_config(tmp_path / "c", crops, epochs=1, max_steps=1), say=lambda _: None)  # no init
    with pytest.raises(TrainingError, match="use_srm is True, this run trains False"):
        train(
            _config(tmp_path / "d", crops, use_srm=False, init_from=str(first.checkpoint)), say=lambda _: None
        )
    # A larger input from the same weights (progressive resizing) is allowed.
    larger = train(
        _config(tmp_path / "e", crops, input_size=48, epochs=1, max_steps=1, init_from=str(first.checkpoint)),
        say=lambda _: None,
    )
    assert load_checkpoint(larger.checkpoint).config.training["init_from"]["input_size"] == 32


def test_square_crop_is_stored_for_inference(tmp_path: Path, crops: Path) -> None:
    config_in = _config(tmp_path, crops, epochs=1, max_steps=1, square_crop="1.1:0.05")
    result = train(config_in, say=lambda _: None)
    config = load_checkpoint(result.checkpoint).config
    assert (config.face_square_scale, config.face_shift_y) == (1.1, 0.05)
    for bad in ("9", "1.1:0.9", "x:y", "1:2:3"):
        with pytest.raises(TrainingError, match="--square-crop"):
            train(_config(tmp_path / bad, crops, square_crop=bad), say=lambda _: None)


def test_cli_trains_and_reports_errors(
    tmp_path: Path, crops: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.safetensors"
    code = main(
        [
            "train",
            "--data",
            str(crops),
            "--out",
            str(out),
            "--run-dir",
            str(tmp_path / "run"),
            "--input-size",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--max-steps",
            "2",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--device",
            "cpu",
            "--no-progress",
            "--val-fraction",
            "0.3",
        ]
    )
    assert code == 0 and out.is_file()
    assert "threshold" in capsys.readouterr().out
    code = main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(out), "--device", "cpu"])
    assert code == 3
    assert "dataset folder not found" in capsys.readouterr().err
    code = main(["train", "--data", str(crops), "--sbi-ratio", "1.5", "--device", "cpu"])
    assert code != 0
    assert "--sbi-ratio" in capsys.readouterr().err


def test_validation_without_both_classes_is_an_error(tmp_path: Path) -> None:
    data = make_crop_folder(tmp_path / "crops", identities=8)
    with pytest.raises(TrainingError, match="validation split needs both"):
        train(_config(tmp_path, data, val_fraction=0.01), say=lambda _: None)


def test_export_best_writes_a_calibrated_checkpoint_and_leaves_the_run_alone(
    tmp_path: Path, crops: Path
) -> None:
    from training.train import export_best

    torch.set_num_threads(2)
    config = _config(tmp_path, crops, epochs=2, sbi_ratio=0.3)
    train(config, say=lambda _: None)
    run = tmp_path / "run"
    names = ("last.json", "last.safetensors", "best.safetensors")
    before = {name: (run / name).read_bytes() for name in names}
    again = _config(tmp_path, crops, epochs=2, sbi_ratio=0.3, out=str(tmp_path / "x.safetensors"))
    exported = export_best(again)
    assert {name: (run / name).read_bytes() for name in before} == before
    meta = load_checkpoint(exported.checkpoint).config
    assert meta.architecture == "tf_efficientnet_lite0" and meta.mean == (0.5, 0.5, 0.5)
    assert meta.name == "deepfakestream-lite0"
    assert meta.training["pretrained"] == "imagenet" and meta.training["init_from"]["source"] == "imagenet"
    assert 0.01 <= meta.temperature <= 100 and meta.metrics["temperature"] == meta.temperature
    assert meta.metrics["logit_offset"] == meta.logit_offset
    assert meta.inconclusive_band is not None
    low, high = meta.inconclusive_band
    assert low <= meta.threshold <= high
    assert "DFDC" in meta.caveat
    with pytest.raises(TrainingError) as caught:
        export_best(_config(tmp_path, crops, epochs=2, sbi_ratio=0.5))
    assert caught.value.code == "resume_mismatch"
