"""The training sampler's mix: dataset crops, self-blends, and REAL-only folder faces labelled REAL."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.config import TrainConfig
from training.data import Sampler
from training.datasets import CropSet
from training.errors import TrainingError
from training.state import check_same_settings, resume_key

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


def _face_crops(n: int, label: int) -> CropSet:
    from tests.utils.training import source_image

    crop_set = _crops(n, 0, label)
    crop_set.images[:] = source_image(SIZE)
    return crop_set


def test_pairs_put_each_real_face_beside_its_own_self_blend() -> None:
    reals = _face_crops(20, 0)
    config = _config(sbi_ratio=0.5, sbi_pairs=True, batch_size=20, augment_strength=1.0)
    sampler = Sampler(_crops(100, 200, 1), reals.images, config)
    images, labels = sampler.batch(0, 0)
    assert labels[:10].tolist() == [0.0, 1.0] * 5, "pairs first: REAL then its FAKE twin"
    assert np.all(labels[10:] == 1.0) and np.all(images[10:] != 0), "then the dataset's crops"
    for slot in range(0, 10, 2):
        real, fake = images[slot].astype(int), images[slot + 1].astype(int)
        assert not np.array_equal(real, fake), "the blend must differ from its twin"
        # Same degradation on both members: away from the face (the crop's corners, outside
        # any blending hull) they are nearly identical.
        assert np.abs(real[:3, :3] - fake[:3, :3]).mean() < 20


def test_pairs_are_reproducible_per_step() -> None:
    reals = _face_crops(8, 0)
    config = _config(sbi_ratio=0.5, sbi_pairs=True, batch_size=10, augment_strength=1.0)
    first = Sampler(_crops(40, 200, 1), reals.images, config).batch(1, 2)
    second = Sampler(_crops(40, 200, 1), reals.images, config).batch(1, 2)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"sbi_landmark_points": 7}, "5 or 68"),
        ({"lower_face_ratio": 0.3}, "68"),
        ({"sbi_pairs": True, "sbi_ratio": 0.0}, "--sbi-pairs"),
    ],
)
def test_bad_pair_settings_are_refused(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(TrainingError, match=needle):
        _config(**changes).validate()


def test_generated_face_blends_take_their_share_of_the_pairs() -> None:
    reals = _face_crops(20, 0)
    config = _config(sbi_ratio=1.0, sbi_pairs=True, batch_size=40, generated_face_ratio=1.0)
    images, labels = Sampler(_crops(100, 200, 1), reals.images, config).batch(0, 0)
    assert labels.tolist() == [0.0, 1.0] * 20
    for slot in range(0, 40, 2):
        assert not np.array_equal(images[slot], images[slot + 1]), "each repainted face differs from its twin"
    # The share is honoured: with no generated share, the same draws give other blends.
    plain = Sampler(_crops(100, 200, 1), reals.images, _config(sbi_ratio=1.0, sbi_pairs=True, batch_size=40))
    assert not np.array_equal(plain.batch(0, 0)[0][1::2], images[1::2])


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"generated_face_ratio": 1.5}, "--generated-face-ratio"),
        (
            {"generated_face_ratio": 0.8, "lower_face_ratio": 0.3, "sbi_landmark_points": 68},
            "at most 1",
        ),
    ],
)
def test_bad_generated_face_ratios_are_refused(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(TrainingError, match=needle):
        _config(**changes).validate()


@pytest.mark.parametrize(
    ("share", "low", "high"), [(None, 0.05, 0.15), (0.5, 0.42, 0.58), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)]
)
def test_real_source_share_sets_how_often_folder_frames_are_blended(
    share: float | None, low: float, high: float
) -> None:
    dataset_reals = np.full((90, SIZE, SIZE, 3), 10, dtype=np.uint8)
    folder = np.full((10, SIZE, SIZE, 3), 200, dtype=np.uint8)
    reals = np.concatenate([dataset_reals, folder])  # as ``prepare`` lays them out: folder frames last
    config = _config(sbi_ratio=0.5, real_source_share=share)
    config.validate()
    sampler = Sampler(_crops(100, 10, 0), reals, config, extra_reals=folder)
    rng = np.random.default_rng(3)
    picks = np.array([sampler._source(rng) for _ in range(2000)])
    assert picks.min() >= 0 and picks.max() < len(reals)
    from_folder = (reals[picks, 0, 0, 0] == 200).mean()
    assert low <= from_folder <= high, from_folder


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"real_source_share": 1.5}, "in \\[0, 1\\]"),
        ({"real_source_share": 0.5, "real_data": []}, "--real-data"),
    ],
)
def test_bad_real_source_shares_are_refused(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(TrainingError, match=needle) as caught:
        _config(**changes).validate()
    assert caught.value.code == "invalid_arguments"


def test_the_real_source_share_is_part_of_a_run_s_settings(tmp_path: object) -> None:
    saved = json.loads(resume_key(_config()))
    del saved["real_source_share"]  # a run saved before the setting existed
    state = {"config_key": json.dumps(saved)}
    assert check_same_settings(tmp_path, state, _config()) == _config().epochs  # type: ignore[arg-type]
    with pytest.raises(TrainingError):
        check_same_settings(tmp_path, state, _config(real_source_share=0.5))  # type: ignore[arg-type]
