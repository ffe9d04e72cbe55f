"""A run held to a teacher's scores (--distill-from): it trains, records it, and refuses a mismatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.model import load_checkpoint
from tests.utils.training import make_crop_folder, tiny_run_config
from training.errors import TrainingError
from training.train import train

pytestmark = pytest.mark.integration

_SETTINGS: dict[str, object] = {
    "epochs": 1,
    "batch_size": 8,
    "sbi_ratio": 0.5,
    "sbi_pairs": True,
    "sbi_landmarks": False,
    "val_fraction": 0.3,
    "save_every": 0,
}


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crop_folder(tmp_path_factory.mktemp("data") / "crops", identities=12, fakes_per_identity=1)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory, crops: Path) -> Path:
    folder = tmp_path_factory.mktemp("teacher")
    return train(tiny_run_config(folder, crops, **_SETTINGS), say=lambda _: None).checkpoint


def test_a_run_held_to_its_teacher_trains_and_says_so(tmp_path: Path, crops: Path, teacher: Path) -> None:
    said: list[str] = []
    config = tiny_run_config(
        tmp_path, crops, **_SETTINGS, init_from=str(teacher), distill_from=str(teacher), distill_weight=2.0
    )
    result = train(config, say=said.append)
    assert any("held to the scores of" in line for line in said)
    meta = load_checkpoint(result.checkpoint).config
    assert meta.training["distill_from"] == str(teacher) and meta.training["distill_weight"] == 2.0
    assert np.isfinite(result.metrics["log_loss"])
    # The teacher is part of the run's settings: resuming without it is refused.
    with pytest.raises(TrainingError) as caught:
        train(tiny_run_config(tmp_path, crops, **{**_SETTINGS, "epochs": 2}), resume=True, say=lambda _: None)
    assert caught.value.code == "resume_mismatch"


def test_a_teacher_for_other_crops_is_refused(tmp_path: Path, crops: Path, teacher: Path) -> None:
    config = tiny_run_config(tmp_path, crops, **_SETTINGS, input_size=48, distill_from=str(teacher))
    with pytest.raises(TrainingError, match="32 px") as caught:
        train(config, say=lambda _: None)
    assert caught.value.code == "invalid_arguments"
    assert load_checkpoint(teacher).config.input_size == 32
