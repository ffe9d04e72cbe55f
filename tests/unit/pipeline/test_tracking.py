"""Face tracks: IoU linking within a segment and video-wide ids across segments."""

from __future__ import annotations

import pytest

from pipeline.faces import box_iou
from pipeline.tracking import link_segment_tracks, link_tracks
from pipeline.types import FaceResult, FrameResult


def test_box_iou_values() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_a_slowly_moving_face_is_one_track() -> None:
    frames = [[(10 + 5 * i, 10, 110 + 5 * i, 110)] for i in range(10)]
    assert link_tracks(frames) == [[1]] * 10


def test_two_faces_keep_their_own_tracks_whatever_the_order() -> None:
    left = lambda i: (10 + 2 * i, 10, 60 + 2 * i, 60)  # noqa: E731
    right = lambda i: (300 - 2 * i, 10, 350 - 2 * i, 60)  # noqa: E731
    frames = [[left(i), right(i)] if i % 2 else [right(i), left(i)] for i in range(6)]
    ids = link_tracks(frames)
    for i, frame_ids in enumerate(ids):
        left_id, right_id = (frame_ids[0], frame_ids[1]) if i % 2 else (frame_ids[1], frame_ids[0])
        assert (left_id, right_id) == (2, 1)  # the first frame lists the right face first


def test_a_face_missed_for_a_frame_or_two_continues_its_track() -> None:
    box = (100, 100, 200, 200)
    frames = [[box], [], [], [box]]
    assert link_tracks(frames, max_gap=2) == [[1], [], [], [1]]


def test_a_face_gone_longer_than_the_gap_starts_a_new_track() -> None:
    box = (100, 100, 200, 200)
    frames = [[box], [], [], [], [box]]
    assert link_tracks(frames, max_gap=2) == [[1], [], [], [], [2]]


def test_a_fast_face_without_overlap_is_followed_by_proximity() -> None:
    # 120 px per sample for a 100 px face: IoU 0, centre shift 1.2 face sizes... too far.
    too_fast = [[(0 + 120 * i, 0, 100 + 120 * i, 100)] for i in range(3)]
    assert link_tracks(too_fast) == [[1], [2], [3]]
    # 80 px per sample: no overlap above 0.3 IoU (0.11), but close and the same size.
    fast = [[(0 + 80 * i, 0, 100 + 80 * i, 100)] for i in range(3)]
    assert link_tracks(fast) == [[1], [1], [1]]


def test_a_box_of_very_different_size_nearby_is_another_face() -> None:
    frames = [[(100, 100, 200, 200)], [(150, 150, 170, 170)]]
    assert link_tracks(frames) == [[1], [2]]


def test_overlap_beats_proximity() -> None:
    # The first frame's face continues into the box it overlaps, not the one merely near it.
    frames = [[(100, 0, 200, 100)], [(180, 0, 280, 100), (110, 0, 210, 100)]]
    assert link_tracks(frames) == [[1], [2, 1]]


def _frame(t: float, faces: list[tuple[tuple[float, float, float, float], int]]) -> FrameResult:
    return FrameResult(
        index=round(t * 30), t=t, score=0.5,
        faces=[FaceResult(box=box, det_score=0.99, track=track, score=0.5) for box, track in faces],
    )


def test_tracks_continue_across_segments_and_new_faces_get_new_ids() -> None:
    face = (100.0, 100.0, 200.0, 200.0)
    other = (600.0, 100.0, 700.0, 200.0)
    segment0 = [_frame(9.0, [(face, 1)]), _frame(9.67, [(face, 1)])]
    segment1 = [_frame(10.0, [(other, 1), (face, 2)]), _frame(10.33, [(face, 2)])]
    segment2 = [_frame(20.0, [(face, 1)])]  # present in segment 1 until 10.33: too long ago
    mappings = link_segment_tracks([segment0, segment1, segment2], max_gap_s=1.0)
    assert mappings[0] == {1: 1}
    assert mappings[1] == {2: 1, 1: 2}
    assert mappings[2] == {1: 3}


def test_segments_without_faces_break_tracks() -> None:
    face = (100.0, 100.0, 200.0, 200.0)
    mappings = link_segment_tracks([[_frame(9.9, [(face, 1)])], [], [_frame(10.1, [(face, 1)])]])
    assert mappings == [{1: 1}, {}, {1: 2}]
