"""The calibration set of an export: the validation split, optionally with self-blends of its REAL faces."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from tests.utils.training import source_image
from training.calibration_set import build_calibration_set
from training.config import TrainConfig
from training.datasets import CropSet
from training.errors import TrainingError
from training.state import resume_key

SIZE = 48


def _val_set() -> CropSet:
    face = source_image(SIZE)
    faces = [face, cv2.flip(face, 1), np.roll(face, 3, axis=0), np.roll(face, -3, axis=1)]
    labels = np.array([0, 1, 0, 0], dtype=np.int64)
    return CropSet(
        images=np.stack(faces),
        labels=labels,
        groups=[f"g{i}" for i in range(4)],
        items=[f"i{i}.png" for i in range(4)],
        kind="crops",
        manifest_sha256="",
        size=SIZE,
    )


def test_val_is_the_validation_split_as_it_is() -> None:
    val = _val_set()
    built = build_calibration_set(val, "val", seed=0)
    assert built.name == "val"
    assert np.array_equal(built.images, val.images) and np.array_equal(built.labels, val.labels)
    assert built.counts == {"real": 3, "fake": 1, "self_blends": 0}


def test_self_blends_are_appended_one_per_real_face_reproducibly() -> None:
    val = _val_set()
    built = build_calibration_set(val, "val+self-blends", seed=0)
    assert built.name == "val+self-blends"
    assert built.counts == {"real": 3, "fake": 1, "self_blends": 3}
    assert built.images.shape == (7, SIZE, SIZE, 3) and built.images.dtype == np.uint8
    # The validation crops come first, unchanged; the blends follow, labelled FAKE.
    assert np.array_equal(built.images[:4], val.images)
    assert built.labels.tolist() == [0, 1, 0, 0, 1, 1, 1]
    for blend, real in zip(built.images[4:], val.images[val.labels == 0], strict=True):
        changed = np.any(blend != real, axis=2)
        assert changed.any() and not changed.all(), "a blend changes part of its own real face"
    # Same seed, same set; another seed, other blends.
    assert np.array_equal(build_calibration_set(val, "val+self-blends", seed=0).images, built.images)
    assert not np.array_equal(build_calibration_set(val, "val+self-blends", seed=1).images, built.images)


def test_without_real_faces_nothing_is_blended() -> None:
    val = _val_set()
    fakes = val.subset([1])
    built = build_calibration_set(fakes, "val+self-blends", seed=0)
    assert built.counts == {"real": 0, "fake": 1, "self_blends": 0} and len(built.labels) == 1


def test_an_unknown_calibration_set_is_refused() -> None:
    with pytest.raises(TrainingError) as caught:
        build_calibration_set(_val_set(), "test", seed=0)
    assert caught.value.code == "invalid_arguments"
    config = TrainConfig(data=["x"], calibration="self-blends")
    with pytest.raises(TrainingError, match="--calibration") as refused:
        config.validate()
    assert refused.value.code == "invalid_arguments"


def test_the_calibration_set_is_not_part_of_the_resume_key() -> None:
    config = TrainConfig(data=["x"])
    other = dataclasses.replace(config, calibration="val+self-blends")
    config.validate()
    other.validate()
    assert resume_key(config) == resume_key(other)
