"""Image jobs in the worker: the one frame's faces kept on the job row, the whole answer in one read.

An image runs through the same stages as a video (probe, one segment, finalize); only its result
has this extra, compact form: ``[{box, det_score, score}]`` in the image's pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.models import Job

if TYPE_CHECKING:
    from pipeline.types import VideoResult

__all__ = ["store_image_faces"]


def store_image_faces(job: Job, result: VideoResult) -> None:
    """An image job's faces on its row; nothing for a video."""
    if result.video.media_type != "image":
        job.faces = None
        return
    job.media_type = "image"
    job.faces = [
        {
            # As the frame rows have them (worker/results.py), so the two answers agree.
            "box": [round(float(v), 2) for v in face.box],
            "det_score": round(float(face.det_score), 5),
            "score": float(face.score),
        }
        for frame in result.frames
        for face in frame.faces
    ]
