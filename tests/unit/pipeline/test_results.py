"""A segment's frames assembled from raw detections and scores: boxes in the video's pixels, each
detection's score in frame order, explanations most suspicious first."""

from __future__ import annotations

import numpy as np

from pipeline.faces import Detection
from pipeline.results import frame_results


def _face(x: float) -> Detection:
    return Detection(box=(x, 10.0, x + 20.0, 30.0), score=0.99, landmarks=())


def test_frames_take_their_scores_in_order_and_scale_to_the_video() -> None:
    frames, explanations = frame_results(
        times=[0.0, 0.5],
        numbers=[0, 12],
        detections=[[_face(0.0), _face(40.0)], [_face(2.0)]],
        track_ids=[[1, 2], [1]],
        scores=np.array([0.2, 0.9, 0.4], dtype=np.float32),
        explained={1: (b"overlay-b", b"crop-b"), 2: (b"overlay-c", b"crop-c")},
        scale=(2.0, 1.0),
    )
    assert [frame.index for frame in frames] == [0, 12]
    assert [[face.score for face in frame.faces] for frame in frames] == [
        [np.float32(0.2), np.float32(0.9)],
        [np.float32(0.4)],
    ]
    assert frames[0].faces[1].box == (80.0, 10.0, 120.0, 30.0)
    assert [(e.frame_index, e.face, e.track, e.heatmap_jpeg) for e in explanations] == [
        (0, 1, 2, b"overlay-b"),
        (12, 0, 1, b"overlay-c"),
    ]
