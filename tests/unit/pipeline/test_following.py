"""Cheap face detection: the smallest face worth scoring, scene cuts, and faces followed between
whole-frame detections, measured against whole-frame detection on every frame."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.faces import Detection, FaceDetector, box_iou, crop_growth, smallest_face_to_score
from pipeline.following import FaceFollower, scene_changed
from tests.utils.media import shot_frames

WIDTH, HEIGHT = 960, 540


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(device="cpu", detect_long_side=640, min_face_size=20)


@pytest.fixture(scope="module")
def two_shots() -> tuple[np.ndarray, list[list[tuple[float, float, float, float]]]]:
    """24 samples: the astronaut crossing one shot, a cut at frame 10 to a shot with two faces."""
    return shot_frames(WIDTH, HEIGHT, 24, patch_height=300, cut_at=10, step=14)


def _matched(reference: list[Detection], found: list[Detection], min_iou: float = 0.5) -> list[float]:
    """For each reference face, the best IoU of a found face (0 when none overlaps it)."""
    return [max((box_iou(r.box, f.box) for f in found), default=0.0) for r in reference]


def test_crop_growth_of_both_framings() -> None:
    assert crop_growth({"margin": 0.3, "square_scale": None, "shift_y": 0.0}) == pytest.approx(1.3)
    assert crop_growth({"margin": 0.0, "square_scale": 1.085, "shift_y": 0.087}) == pytest.approx(1.085)


def test_smallest_face_comes_from_the_classifier_input_in_large_frames() -> None:
    # 160-pixel input, a crop 1.085 times the face, enlarged at most twice: 73.7 px.
    options = {"input_size": 160, "growth": 1.085, "max_upscale": 2.0, "frame_fraction": 0.1}
    assert smallest_face_to_score(1920, 1080, **options) == pytest.approx(160 / 2.17)
    # A larger input needs larger faces.
    assert smallest_face_to_score(1920, 1080, **{**options, "input_size": 224}) == pytest.approx(224 / 2.17)


def test_smallest_face_comes_from_the_frame_in_small_frames() -> None:
    options = {"input_size": 160, "growth": 1.085, "max_upscale": 2.0, "frame_fraction": 0.1}
    assert smallest_face_to_score(640, 360, **options) == pytest.approx(36.0)
    assert smallest_face_to_score(360, 640, **options) == pytest.approx(36.0)  # portrait
    assert smallest_face_to_score(640, 360, **{**options, "max_upscale": 0.0}) == 0.0


def test_scene_changed_on_a_cut_not_on_motion(two_shots: tuple[np.ndarray, list]) -> None:
    frames, _ = two_shots
    changes = [scene_changed(frames[i - 1], frames[i]) for i in range(1, len(frames))]
    assert changes == [i == 10 for i in range(1, len(frames))]


def test_detect_skips_faces_below_the_smallest_face(detector: FaceDetector) -> None:
    frames, boxes = shot_frames(WIDTH, HEIGHT, 1, patch_height=240)
    size = max(boxes[0][0][2] - boxes[0][0][0], boxes[0][0][3] - boxes[0][0][1])
    assert len(detector.detect(frames, smallest_face=0.7 * size)[0]) == 1
    assert detector.detect(frames, smallest_face=1.6 * size) == [[]]


def test_detect_near_refinds_a_moved_face_and_reports_a_missing_one(detector: FaceDetector) -> None:
    frames, boxes = shot_frames(WIDTH, HEIGHT, 4, patch_height=300, step=40)
    seen = detector.detect(frames[:1])[0]
    assert len(seen) == 1
    # Three samples later the face has moved 120 px (about its width): still found, in place.
    again = detector.detect_near(frames[3], [seen[0].box])
    assert again[0] is not None
    assert box_iou(again[0].box, boxes[3][0]) > 0.6
    whole = detector.detect(frames[3:4])[0][0]
    assert box_iou(again[0].box, whole.box) > 0.85
    assert again[0].score >= detector.det_threshold
    # Where there is no face any more: None, not some other box.
    empty = np.zeros_like(frames[0]) + 90
    assert detector.detect_near(empty, [seen[0].box]) == [None]


def test_following_every_frame_is_whole_frame_detection(detector: FaceDetector, two_shots) -> None:
    frames, _ = two_shots
    follower = FaceFollower(detector, detect_interval=1)
    assert [[d.box for d in f] for f in follower.detect(frames)] == [
        [d.box for d in f] for f in detector.detect(frames)
    ]
    assert follower.stats.full == len(frames) and follower.stats.followed == 0


def test_following_loses_no_face_whole_frame_detection_finds(detector: FaceDetector, two_shots) -> None:
    frames, truth = two_shots
    reference = detector.detect(frames)
    follower = FaceFollower(detector, detect_interval=4)
    followed = [face for chunk in (frames[:8], frames[8:16], frames[16:]) for face in follower.detect(chunk)]
    assert [len(f) for f in truth] == [1] * 10 + [2] * 14
    assert [len(f) for f in reference] == [len(f) for f in truth]  # the reference itself is right
    ious = [iou for ref, got in zip(reference, followed, strict=True) for iou in _matched(ref, got)]
    lost = sum(iou < 0.5 for iou in ious)
    assert lost <= 0.02 * len(ious)
    assert float(np.mean(ious)) > 0.85
    # No face that is not there: each followed face overlaps a face of the reference.
    assert all(iou > 0.5 for ref, got in zip(reference, followed, strict=True) for iou in _matched(got, ref))
    # Whole frames searched: frame 0, then every 4th, and the cut at 10 starts the count again.
    stats = follower.stats
    assert stats.scene_cuts == 1 and stats.motion == 0 and stats.lost == 0
    assert stats.full == len([0, 4, 8, 10, 14, 18, 22])
    assert stats.followed == len(frames) - stats.full


def test_a_face_not_found_again_makes_the_frame_searched_whole(detector: FaceDetector) -> None:
    frames, _ = shot_frames(WIDTH, HEIGHT, 3, patch_height=300, step=14)
    backdrop, _ = shot_frames(WIDTH, HEIGHT, 1, patch_height=300, enters_at=1)
    frames[2] = backdrop[0]  # the face is gone where it was; nothing else moved
    follower = FaceFollower(detector, detect_interval=10)
    found = follower.detect(frames)
    assert [len(f) for f in found] == [1, 1, 0]
    assert follower.stats.to_dict() == {"full": 2, "followed": 1, "scene_cuts": 0, "motion": 0, "lost": 1}


def test_a_face_walking_in_makes_the_frame_searched_whole(detector: FaceDetector) -> None:
    frames, truth = shot_frames(WIDTH, HEIGHT, 6, patch_height=300, step=14, enters_at=2)
    follower = FaceFollower(detector, detect_interval=4)
    found = follower.detect(frames)
    # The face comes into the shot at frame 2 (not a cut, but motion where no face is followed).
    assert [len(f) for f in truth] == [0, 0, 1, 1, 1, 1]
    assert [len(f) for f in found] == [0, 0, 1, 1, 1, 1]
    assert follower.stats.to_dict() == {"full": 2, "followed": 4, "scene_cuts": 0, "motion": 1, "lost": 0}
