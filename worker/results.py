"""What the stages store: rows upserted, explanation images beside the video, job statistics.

Rows have unique keys and images keys derived from ids, so a segment that runs twice rewrites its
rows and overwrites its images instead of leaving copies.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import upsert
from core.logs import log_event
from core.models import Explanation, Frame, Job, JobStatistics, Segment, Track, Video
from core.storage import ObjectStore, explanation_path, statistics_path
from lifecycle.statistics import statistics_document
from pipeline.types import VideoInfo, suspicion_order

if TYPE_CHECKING:
    from pipeline.types import SegmentResult, TrackResult, VideoResult

__all__ = [
    "discard_uploads",
    "frame_rows",
    "rank_explanations",
    "set_video_tracks",
    "store_explanations",
    "store_frames",
    "store_job_statistics",
    "store_tracks",
    "store_video_info",
    "upload_explanations",
    "video_info",
    "write_statistics_document",
]

log = logging.getLogger(__name__)

# The statistics columns copied as they are from pipeline.quality.video_statistics.
_STATISTICS_COLUMNS = (
    "brightness_pct",
    "histogram_mean",
    "histogram_std",
    "histogram_variance",
    "sharpness",
    "face_sharpness",
    "face_size_px",
    "face_size_ratio",
    "faces_per_frame",
    "face_frame_ratio",
    "width",
    "height",
    "fps",
    "duration_s",
)


# --- the video -----------------------------------------------------------------------------------


def video_info(video: Video) -> VideoInfo:
    """The probe's findings as the pipeline had them."""
    assert video.info is not None
    return VideoInfo(**video.info)


def store_video_info(video: Video, info: VideoInfo) -> None:
    video.duration_s = info.duration_s
    video.fps = info.fps
    video.width = info.width
    video.height = info.height
    video.codec = info.codec[:64]
    video.format_name = info.format_name[:128]
    video.info = info.to_dict()


# --- frames and tracks ---------------------------------------------------------------------------


def _face_doc(face: Any) -> dict[str, Any]:
    return {
        "box": [round(float(v), 2) for v in face.box],
        "det_score": round(float(face.det_score), 5),
        "track": int(face.track),
        "segment_track": int(face.track),  # the id within the segment; "track" becomes video-wide
        "score": float(face.score),
    }


def frame_rows(job_id: uuid.UUID, result: SegmentResult) -> list[dict[str, Any]]:
    """One row per sampled frame of the segment (a frame sampled twice is stored once)."""
    rows: dict[int, dict[str, Any]] = {}
    for frame in result.frames:
        rows.setdefault(
            frame.index,
            {
                "job_id": job_id,
                "segment_index": result.index,
                "frame_index": frame.index,
                "t": float(frame.t),
                "score": None if frame.score is None else float(frame.score),
                "faces": [_face_doc(face) for face in frame.faces],
            },
        )
    return list(rows.values())


def store_frames(session: Session, rows: list[dict[str, Any]]) -> None:
    upsert(
        session,
        Frame,
        rows,
        constraint="uq_frames_job_id_frame_index",
        update=("segment_index", "t", "score", "faces"),
    )


def set_video_tracks(session: Session, rows: list[Frame], result: VideoResult) -> None:
    """Writes the video-wide track ids back onto the stored faces; ``rows`` are the frames in the
    order they were given to ``finalize`` (which returns them in that order)."""
    updates = []
    for row, frame in zip(rows, result.frames, strict=True):
        if row.faces:
            faces = [
                {**stored, "track": int(linked.track)}
                for stored, linked in zip(row.faces, frame.faces, strict=True)
            ]
            updates.append({"row_id": row.id, "new_faces": faces})
    if updates:
        frames_table = cast(Table, Frame.__table__)
        session.connection().execute(
            update(frames_table)
            .where(frames_table.c.id == bindparam("row_id"))
            .values(faces=bindparam("new_faces")),
            updates,
        )


def store_tracks(session: Session, *, job_id: uuid.UUID, tracks: list[TrackResult]) -> None:
    rows = [
        {
            "job_id": job_id,
            "track_id": track.id,
            "first_t": track.first_t,
            "last_t": track.last_t,
            "score": track.score,
            "faces": track.faces,
        }
        for track in tracks
    ]
    upsert(
        session,
        Track,
        rows,
        constraint="uq_tracks_job_id_track_id",
        update=("first_t", "last_t", "score", "faces"),
    )


# --- explanations --------------------------------------------------------------------------------


def upload_explanations(storage: ObjectStore, *, video: Video, result: SegmentResult) -> list[dict[str, Any]]:
    """Writes each explained face's heatmap and crop; returns the rows to store with the segment.
    Storage errors propagate (the segment is retried like any other storage outage)."""
    rows = []
    for explanation in result.explanations:
        keys = {}
        for kind, data in (("heatmap", explanation.heatmap_jpeg), ("crop", explanation.crop_jpeg)):
            key = explanation_path(
                tenant_id=video.tenant_id,
                video_id=video.id,
                frame_index=explanation.frame_index,
                face=explanation.face,
                kind=kind,
            )
            storage.put_bytes(key, data, content_type="image/jpeg")
            keys[kind] = key
        rows.append(
            {
                "segment_index": result.index,
                "frame_index": explanation.frame_index,
                "face": explanation.face,
                "t": float(explanation.t),
                "score": float(explanation.score),
                "box": [round(float(v), 2) for v in explanation.box],
                "heatmap_key": keys["heatmap"],
                "crop_key": keys["crop"],
            }
        )
    return rows


def discard_uploads(storage: ObjectStore, uploaded: list[dict[str, Any]]) -> None:
    """Removes images a segment wrote when its results are dropped (the job ended meanwhile)."""
    for row in uploaded:
        for key in (row["heatmap_key"], row["crop_key"]):
            try:
                storage.delete(key)
            except Exception as exc:  # best effort: an orphan image is logged, never fatal
                log_event(
                    log,
                    "job.explanation.cleanup_failed",
                    level=logging.WARNING,
                    key=key,
                    error=str(exc)[:200],
                )


def store_explanations(session: Session, *, job_id: uuid.UUID, uploaded: list[dict[str, Any]]) -> None:
    """The rows of the images ``upload_explanations`` wrote, in the segment's transaction."""
    upsert(
        session,
        Explanation,
        [{"job_id": job_id, **row} for row in uploaded],
        constraint="uq_explanations_job_id_frame_index_face",
        update=("segment_index", "t", "score", "box", "heatmap_key", "crop_key"),
    )


def rank_explanations(session: Session, *, job_id: uuid.UUID, top_k: int) -> None:
    """Ranks the job's ``top_k`` most suspicious explained faces 1…k; the others lose their rank."""
    session.execute(
        update(Explanation)
        .where(Explanation.job_id == job_id)
        .values(rank=None)
        .execution_options(synchronize_session=False)
    )
    if top_k <= 0:
        return
    explained = session.execute(
        select(Explanation.id, Explanation.score, Explanation.frame_index, Explanation.face).where(
            Explanation.job_id == job_id
        )
    ).all()
    ranked = sorted(explained, key=suspicion_order)[:top_k]
    for rank, row in enumerate(ranked, start=1):
        session.execute(
            update(Explanation)
            .where(Explanation.id == row.id)
            .values(rank=rank)
            .execution_options(synchronize_session=False)
        )


# --- statistics ----------------------------------------------------------------------------------


def store_job_statistics(session: Session, *, job: Job, result: VideoResult, segments: list[Segment]) -> None:
    """The job's input and output statistics row, from its segments' input statistics."""
    from pipeline.quality import video_statistics

    stats = video_statistics([segment.quality for segment in segments], result.video)
    spread = stats.pop("spread", {})
    values = {
        "job_id": job.id,
        "tenant_id": job.tenant_id,
        "finished_at": job.finished_at or datetime.now(UTC),
        "frames_sampled": int(stats.get("frames_sampled") or 0),
        "faces": int(stats.get("faces") or 0),
        **{name: stats.get(name) for name in _STATISTICS_COLUMNS},
        "codec": str(stats.get("codec") or "")[:64] or None,
        "score": result.score,
        "verdict": result.verdict,
        "no_face": result.verdict == "no_face",
        "details": {
            "spread": spread,
            "segments": [
                {"index": s.segment_index, "score": s.score, "quality": s.quality} for s in segments
            ],
            "model": dict(result.model),
        },
    }
    upsert(
        session,
        JobStatistics,
        [values],
        index_elements=[JobStatistics.job_id],
        update=[key for key in values if key != "job_id"],
    )


def write_statistics_document(
    session_factory: sessionmaker[Session], storage: ObjectStore, *, job_id: uuid.UUID
) -> str | None:
    """Copies the job's statistics row to ``statistics.json`` beside the video and records the key.
    Best effort: the row is the source of truth, so a storage outage is logged, not retried."""
    with session_factory() as session:
        row = session.get(JobStatistics, job_id)
        job = session.get(Job, job_id)
        if row is None or job is None:
            return None
        document = statistics_document(row)
        key = statistics_path(tenant_id=job.tenant_id, video_id=job.video_id)
        try:
            storage.put_bytes(
                key, json.dumps(document, default=str).encode(), content_type="application/json"
            )
        except Exception as exc:  # any storage failure: the database keeps the statistics
            log_event(
                log,
                "job.statistics.store_failed",
                level=logging.WARNING,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            return None
        row.storage_key = key
        session.commit()
    return key
