"""68-point landmarks placed by dlib from MTCNN's five points, on a real face, cached once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.faces import FaceDetector
from tests.utils.training import source_image
from training.landmarks import crop_landmarks
from training.landmarks68 import JAW, MOUTH, box_from_five, cached_crop_landmarks68, crop_landmarks68


def _five(faces: np.ndarray) -> np.ndarray:
    detector = FaceDetector(device="cpu", det_threshold=0.9, min_face_size=40, detect_long_side=0)
    return crop_landmarks(faces, detector)


def test_68_points_outline_the_face_around_the_five() -> None:
    face = source_image(160)
    five = _five(face[None])
    marks = crop_landmarks68(face[None], five)
    assert marks.shape == (1, 68, 2)
    points, (left_eye, right_eye, nose, _, _) = marks[0], five[0]
    assert np.all((points > -10) & (points < 170)), "the points stay on the crop"
    jaw, mouth = points[list(JAW)], points[list(MOUTH)]
    # The jaw line runs from beside one eye, under the mouth, to beside the other.
    assert jaw[0, 0] < left_eye[0] and jaw[-1, 0] > right_eye[0]
    assert jaw[8, 1] > mouth[:, 1].max(), "the chin lies below the mouth"
    assert abs(mouth[:, 0].mean() - nose[0]) < 15 and mouth[:, 1].mean() > nose[1]
    # Eyes (36–47) near MTCNN's eye points.
    assert np.linalg.norm(points[36:42].mean(axis=0) - left_eye) < 12
    assert np.linalg.norm(points[42:48].mean(axis=0) - right_eye) < 12


def test_no_five_points_no_68(tmp_path: Path) -> None:
    faces = np.stack([source_image(160), source_image(160)])
    five = np.full((2, 5, 2), np.nan, dtype=np.float32)
    five[0] = _five(faces[:1])[0]
    first = cached_crop_landmarks68(faces, five, cache_dir=tmp_path)
    assert np.isfinite(first[0]).all() and np.isnan(first[1]).all()
    assert len(list(tmp_path.glob("landmarks68-*.npy"))) == 1
    again = cached_crop_landmarks68(faces, five, cache_dir=tmp_path)
    np.testing.assert_array_equal(first, again)


def test_box_from_five_is_a_square_around_the_features() -> None:
    five = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], dtype=np.float32)
    left, top, right, bottom = box_from_five(five)
    assert right - left == bottom - top
    assert left < 40 and right > 80 and top < 50 and bottom > 90
