"""What the stages store: segment results mapped to frame rows, and the storage keys beside a video."""

from __future__ import annotations

import uuid

from core.storage import explanation_path, statistics_path, video_path
from pipeline.types import FaceResult, FrameResult, SegmentResult
from worker.results import frame_rows


def _segment(frames: list[FrameResult]) -> SegmentResult:
    return SegmentResult(index=2, start_s=4.0, end_s=6.0, score=0.4, frames=frames, tracks=[])


def test_frame_rows_keep_segment_local_tracks_and_round_boxes() -> None:
    job_id = uuid.uuid4()
    face = FaceResult(box=(1.234, 2.0, 30.987, 40.5), det_score=0.9876543, track=3, score=0.25)
    rows = frame_rows(job_id, _segment([FrameResult(index=120, t=4.8, score=0.25, faces=[face])]))

    assert rows == [
        {
            "job_id": job_id,
            "segment_index": 2,
            "frame_index": 120,
            "t": 4.8,
            "score": 0.25,
            "faces": [
                {
                    "box": [1.23, 2.0, 30.99, 40.5],
                    "det_score": 0.98765,
                    "track": 3,
                    "segment_track": 3,
                    "score": 0.25,
                }
            ],
        }
    ]


def test_a_frame_sampled_twice_is_one_row() -> None:
    frames = [FrameResult(index=7, t=0.28, score=None), FrameResult(index=7, t=0.28, score=None)]

    rows = frame_rows(uuid.uuid4(), _segment(frames))

    assert [row["frame_index"] for row in rows] == [7]
    assert rows[0]["score"] is None and rows[0]["faces"] == []


def test_outputs_are_stored_beside_the_video() -> None:
    tenant_id, video_id = uuid.uuid4(), uuid.uuid4()
    folder = f"videos/{tenant_id}/{video_id}/"

    assert video_path(tenant_id=tenant_id, video_id=video_id) == folder + "source"
    assert statistics_path(tenant_id=tenant_id, video_id=video_id) == folder + "statistics.json"
    assert (
        explanation_path(tenant_id=tenant_id, video_id=video_id, frame_index=42, face=1, kind="heatmap")
        == folder + "explanations/frame-0000042-face-1.heatmap.jpg"
    )
