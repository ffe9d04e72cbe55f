"""A flat schedule with snapshots, and the calibrated average of those snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core.cli import main
from pipeline.model import load_checkpoint
from tests.utils.training import make_crop_folder, tiny_run_config
from training.averaging import export_average
from training.config import TrainConfig
from training.errors import TrainingError
from training.schedule import snapshot_path, snapshot_steps
from training.train import train

pytestmark = pytest.mark.integration


# This module's run (``tiny_run_config`` places it and sets 32 px on the CPU).
_SETTINGS: dict[str, object] = {
    "epochs": 3,
    "batch_size": 8,
    "lr": 3e-3,
    "sbi_ratio": 0.25,
    "sbi_landmarks": False,
    "val_fraction": 0.3,
    "save_every": 0,
    "schedule": "flat",
    "snapshot_every": 2,
}


def _config(tmp_path: Path, data: Path, **changes: object) -> TrainConfig:
    return tiny_run_config(tmp_path, data, **{**_SETTINGS, **changes})


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crop_folder(tmp_path_factory.mktemp("data") / "crops", identities=12, fakes_per_identity=1)


@pytest.fixture(scope="module")
def flat_run(tmp_path_factory: pytest.TempPathFactory, crops: Path) -> Path:
    torch.set_num_threads(2)
    folder = tmp_path_factory.mktemp("flat")
    train(_config(folder, crops), say=lambda _: None)
    return folder


def test_a_flat_run_holds_its_rate_and_keeps_snapshots(flat_run: Path, crops: Path) -> None:
    run = flat_run / "run"
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = log[-1]["steps"]
    assert steps >= 6
    # After the warm-up the rate is the peak, to the last step (a one-cycle run's has fallen far below it).
    assert log[-1]["lr"] == pytest.approx(3e-3) and log[-2]["lr"] == pytest.approx(3e-3)
    assert snapshot_steps(run) == list(range(2, steps + 1, 2))
    # Each snapshot is a loadable, uncalibrated checkpoint of the weights at that step.
    snapshot = load_checkpoint(snapshot_path(run, 2))
    assert snapshot.config.input_size == 32 and not snapshot.config.trained
    one_cycle = flat_run / "one-cycle"
    train(_config(one_cycle, crops, schedule="one-cycle", snapshot_every=0), say=lambda _: None)
    last = json.loads((one_cycle / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert last["lr"] < 0.1 * 3e-3
    assert snapshot_steps(one_cycle / "run") == []
    # A run stopped by --max-steps on a snapshot step keeps that snapshot too.
    stopped = flat_run / "stopped"
    train(_config(stopped, crops, max_steps=4), say=lambda _: None)
    assert snapshot_steps(stopped / "run") == [2, 4]
    # The last step of a run is kept whether or not it falls on a snapshot step.
    cut = flat_run / "cut"
    train(_config(cut, crops, max_steps=3), say=lambda _: None)
    assert snapshot_steps(cut / "run") == [2, 3]
    sparse = flat_run / "sparse"
    train(_config(sparse, crops, snapshot_every=4), say=lambda _: None)
    assert snapshot_steps(sparse / "run") == sorted({*range(4, steps + 1, 4), steps})
    # The schedule is part of the run's settings: resuming under the other one is refused.
    with pytest.raises(TrainingError) as caught:
        train(_config(flat_run, crops, schedule="one-cycle", epochs=4), resume=True, say=lambda _: None)
    assert caught.value.code == "resume_mismatch"


def test_the_average_is_the_mean_of_the_snapshots_with_batch_norm_measured_again(
    flat_run: Path, crops: Path
) -> None:
    run = flat_run / "run"
    before = {
        name: (run / name).read_bytes() for name in ("last.json", "last.safetensors", "best.safetensors")
    }
    chosen = [step for step in snapshot_steps(run) if step >= 4]
    assert len(chosen) >= 2
    result = export_average(
        _config(flat_run, crops, out=str(flat_run / "avg.safetensors")),
        (4, 10_000),
        bn_batches=3,
        say=lambda _: None,
    )
    assert {name: (run / name).read_bytes() for name in before} == before, "the run itself is untouched"
    assert (run / f"averaged-{chosen[0]}-{chosen[-1]}.safetensors").is_file()
    averaged = load_checkpoint(result.checkpoint)
    meta = averaged.config
    assert meta.trained and meta.training["averaged"] == {"snapshot_steps": chosen, "batch_norm_images": 24}
    assert meta.training["schedule"] == "flat"
    low, high = meta.inconclusive_band or (None, None)
    assert low is not None and low <= meta.threshold <= high  # type: ignore[operator]
    snapshots = [load_file(str(snapshot_path(run, step))) for step in chosen]
    weights = averaged.state_dict()
    stem = "encoder.conv_stem.weight"
    assert torch.allclose(weights[stem], torch.stack([s[stem] for s in snapshots]).mean(0), atol=1e-6)
    # Batch norm's statistics are measured on the averaged network, not averaged: three batches.
    norms = [key for key in weights if key.endswith("running_var")]
    assert norms
    for key in norms:
        assert int(weights[key.replace("running_var", "num_batches_tracked")]) == 3
    mean_of_snapshots = torch.stack([s[norms[-1]] for s in snapshots]).mean(0)
    assert not torch.allclose(weights[norms[-1]], mean_of_snapshots)


def test_averaging_refuses_what_it_cannot_do(
    flat_run: Path, crops: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(TrainingError, match="averaging needs two or more") as caught:
        export_average(_config(flat_run, crops), (4, 4), say=lambda _: None)
    assert caught.value.code == "invalid_arguments"
    with pytest.raises(TrainingError) as caught:
        export_average(_config(flat_run, crops, lr=1e-2), (0, 100), say=lambda _: None)
    assert caught.value.code == "resume_mismatch"
    with pytest.raises(TrainingError) as caught:
        export_average(_config(flat_run / "nothing", crops), (0, 100), say=lambda _: None)
    assert caught.value.code == "no_resume"
    base = ["train", "--data", str(crops), "--run-dir", str(flat_run / "run"), "--device", "cpu"]
    assert main([*base, "--average-snapshots", "9:3"]) != 0
    assert "FIRST ≤ LAST" in capsys.readouterr().err
    assert main([*base, "--average-snapshots", "four"]) != 0
    assert "FIRST:LAST" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main([*base, "--schedule", "cosine"])
    assert exited.value.code == 2 and "--schedule" in capsys.readouterr().err
    assert main([*base, "--snapshot-every", "-1"]) != 0
    assert "--snapshot-every" in capsys.readouterr().err
