"""Faces followed between whole-frame detections find what whole-frame detection on every
frame finds, in encoded videos, and the results keep their shape."""

from __future__ import annotations

import copy
import logging

import pytest

from pipeline.analyzer import Analyzer
from pipeline.types import FrameResult
from tests.utils.media import FaceVideo, box_iou


def _view(analyzer: Analyzer, **changes: object) -> Analyzer:
    view = copy.copy(analyzer)
    view.config = analyzer.config.replace(**changes)
    return view


def _compare(reference: list[FrameResult], followed: list[FrameResult]) -> tuple[int, int, list[float]]:
    """(faces of the reference, of those none of the same frame's followed faces overlaps by
    half, the best IoU of each)."""
    ious = [
        max((box_iou(ref.box, got.box) for got in other.faces), default=0.0)
        for frame, other in zip(reference, followed, strict=True)
        for ref in frame.faces
    ]
    return len(ious), sum(iou < 0.5 for iou in ious), ious


@pytest.mark.parametrize("video_name", ["face_1080p", "two_faces_video"])
def test_followed_faces_match_whole_frame_detection(
    analyzer: Analyzer, video_name: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    video: FaceVideo = request.getfixturevalue(video_name)
    full = _view(analyzer, detect_interval=1).analyze(video.path)
    with caplog.at_level(logging.INFO, logger="pipeline.analyzer"):
        followed = _view(analyzer, detect_interval=6).analyze(video.path)
    counts = [record.detections for record in caplog.records if record.msg == "pipeline.segment.done"]
    # It did follow: some frames were not searched whole. (The heads of these clips cross the
    # frame in seconds, their hair and shoulders moving outside the searched squares; so many
    # frames are searched whole here, as motion away from the faces asks.)
    assert sum(c["followed"] for c in counts) > 0 and sum(c["full"] for c in counts) < len(full.frames)
    faces, lost, ious = _compare(full.frames, followed.frames)
    assert faces == sum(video.faces for _ in full.frames)  # the reference finds every face
    assert lost <= 0.02 * faces
    assert sum(ious) / len(ious) > 0.85
    # Every face is a detection of its own frame, near where the face really is.
    for frame in followed.frames:
        truth = video.face_boxes_at(frame.t)
        for face in frame.faces:
            assert face.det_score >= analyzer.config.det_threshold
            assert max(box_iou(face.box, box) for box in truth) > 0.5
    # Same tracks and the same shape of results as whole-frame detection.
    assert [t.faces for t in followed.tracks] == [t.faces for t in full.tracks]
    assert followed.to_dict().keys() == full.to_dict().keys()
    assert [list(f.to_dict()) for f in followed.frames] == [list(f.to_dict()) for f in full.frames]
    assert {key for f in followed.frames for face in f.faces for key in face.to_dict()} == {
        "box",
        "det_score",
        "track",
        "score",
    }


def test_faces_too_small_for_the_classifier_are_not_looked_for(
    analyzer: Analyzer, face_1080p: FaceVideo
) -> None:
    # The test classifier sees 128 px of a crop 1.3 times the face: with at most 1.5× enlargement
    # the smallest face scored is 66 px; at 0.25× it is 394 px, larger than the astronaut's (and
    # no share of the frame's height rescues it).
    size = max(b[2] - b[0] for b in face_1080p.face_boxes(0))
    assert 66 < size < 394
    found = _view(analyzer, max_face_upscale=1.5).analyze(face_1080p.path)
    assert all(len(frame.faces) == 1 for frame in found.frames)
    none = _view(analyzer, max_face_upscale=0.25, min_face_fraction=0.0).analyze(face_1080p.path)
    assert none.verdict == "no_face" and all(not frame.faces for frame in none.frames)
