"""Landmarks of pre-cut face crops: found by MTCNN, mapped to crop pixels, cached once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.faces import FaceDetector
from tests.utils.training import source_image
from training.landmarks import cached_crop_landmarks, crop_landmarks


def _detector() -> FaceDetector:
    return FaceDetector(device="cpu", det_threshold=0.9, min_face_size=40, detect_long_side=0)


def test_landmarks_fall_on_the_face_in_crop_coordinates() -> None:
    face = source_image(160)
    noise = np.random.default_rng(0).integers(0, 255, (160, 160, 3), dtype=np.uint8)
    marks = crop_landmarks(np.stack([face, noise]), _detector())
    assert marks.shape == (2, 5, 2)
    left_eye, right_eye, nose, mouth_left, mouth_right = marks[0]
    assert np.all((marks[0] > 0) & (marks[0] < 160))
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert np.isnan(marks[1]).all()  # no face: NaN, so self-blending falls back to the ellipse


def test_landmarks_are_cached_by_the_crops_themselves(tmp_path: Path) -> None:
    faces = np.stack([source_image(160), source_image(160)[:, ::-1].copy()])
    calls: list[int] = []

    def factory() -> FaceDetector:
        calls.append(1)
        return _detector()

    first = cached_crop_landmarks(faces, cache_dir=tmp_path, detector_factory=factory)
    again = cached_crop_landmarks(faces, cache_dir=tmp_path, detector_factory=factory)
    np.testing.assert_array_equal(first, again)
    assert len(calls) == 1
    other = cached_crop_landmarks(faces[:1], cache_dir=tmp_path, detector_factory=factory)
    assert len(calls) == 2 and other.shape == (1, 5, 2)
    # The mirrored face's left eye is where the original's right eye was.
    assert abs(first[1, 0, 0] - (160 - first[0, 1, 0])) < 6
