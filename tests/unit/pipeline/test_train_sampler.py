"""The training sampler's mix: dataset crops, self-blends, and REAL-only folder faces labelled REAL."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.datasets import CropSet
from pipeline.errors import TrainingError
from pipeline.train import TrainConfig
from pipeline.train_data import Sampler
from pipeline.train_state import check_same_settings, resume_key

SIZE = 32


def _crops(n: int, value: int, label: int) -> CropSet:
    return CropSet(
        images=np.full((n, SIZE, SIZE, 3), value, dtype=np.uint8),
        labels=np.full(n, label, dtype=np.int64),
        groups=[f"g{i}" for i in range(n)],
        items=[f"i{i}.png" for i in range(n)],
        kind="crops",
        manifest_sha256="",
        size=SIZE,
    )


def _config(**changes: object) -> TrainConfig:
    values: dict[str, object] = {
        "data": ["unused"],
        "real_data": ["videos"],
        "input_size": SIZE,
        "batch_size": 50,
        "augment_strength": 0.0,
        "sbi_ratio": 0.0,
    }
    values.update(changes)
    return TrainConfig(**values)  # type: ignore[arg-type]


def test_real_data_ratio_mixes_folder_faces_in_as_real() -> None:
    config = _config(real_data_ratio=0.3)
    config.validate()
    train = _crops(1000, 10, 1)  # every dataset crop is FAKE and dark
    extra = np.full((5, SIZE, SIZE, 3), 200, dtype=np.uint8)  # the folder's faces are bright
    sampler = Sampler(train, extra, config, extra_reals=extra)
    images, labels = [], []
    for step in range(10):
        batch, label = sampler.batch(0, step)
        images.append(batch)
        labels.append(label)
    pixels = np.concatenate(images)[:, 0, 0, 0]
    all_labels = np.concatenate(labels)
    from_folder = pixels == 200
    assert 0.22 < from_folder.mean() < 0.38, from_folder.mean()
    assert (all_labels[from_folder] == 0).all() and (all_labels[~from_folder] == 1).all()


def test_without_the_ratio_folder_faces_never_appear_as_samples() -> None:
    config = _config()
    sampler = Sampler(_crops(200, 10, 1), np.zeros((0, SIZE, SIZE, 3), np.uint8), config)
    batch, labels = sampler.batch(0, 0)
    assert (batch == 10).all() and (labels == 1).all()


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"real_data_ratio": 0.3, "real_data": []}, "--real-data folder"),
        ({"real_data_ratio": 0.6, "sbi_ratio": 0.5}, "--real-data-ratio"),
        ({"real_data_ratio": -0.1}, "--real-data-ratio"),
    ],
)
def test_bad_ratios_are_refused(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(TrainingError, match=needle) as caught:
        _config(**changes).validate()
    assert caught.value.code == "invalid_arguments"


def test_sampler_refuses_a_ratio_without_folder_faces() -> None:
    with pytest.raises(TrainingError, match="none were found"):
        Sampler(_crops(100, 10, 1), np.zeros((0, SIZE, SIZE, 3), np.uint8), _config(real_data_ratio=0.2))


def test_runs_saved_before_the_setting_existed_still_resume(tmp_path: object) -> None:
    config = _config(epochs=8)
    saved = json.loads(resume_key(config))
    del saved["real_data_ratio"]
    state = {"config_key": json.dumps(saved)}
    assert check_same_settings(tmp_path, state, config) == 8  # type: ignore[arg-type]
    with pytest.raises(TrainingError) as caught:
        check_same_settings(tmp_path, state, _config(epochs=8, real_data_ratio=0.1))  # type: ignore[arg-type]
    assert caught.value.code == "resume_mismatch"
