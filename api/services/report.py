"""A finished job's HTML report: its stored rows and images given to ``core.report.build_report``.

The same document as ``deepfakestream analyze --report``: the job's frames, segments and tracks,
its ranked explanations (the page's "most suspicious faces") with their images from storage, and
what the verdict was decided with as it was stored at finalize.
"""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services.explanations import MAX_IMAGE_BYTES, video_wide_tracks
from api.services.jobs import get_job
from core.errors import ConflictError, ObjectNotFoundError
from core.models import Explanation, Frame, Job, Segment, Track
from core.report import (
    Report,
    ReportFace,
    ReportFrame,
    ReportInput,
    ReportSegment,
    ReportTrack,
    build_report,
)
from core.report_html import render_report
from core.states import JobStatus
from core.storage import ObjectStore

__all__ = ["job_report", "report_filename"]


def report_filename(job_id: uuid.UUID) -> str:
    return f"deepfakestream-report-{job_id}.html"


def _input_name(job: Job) -> str:
    video = job.video
    if video.filename:
        return video.filename
    if video.source_uri:
        return PurePosixPath(video.source_uri.split("?", 1)[0]).name or video.source_uri
    return str(job.id)


def _image(storage: ObjectStore, key: str) -> bytes | None:
    """A stored JPEG, or None when it is gone (the report then shows fewer faces)."""
    try:
        info = storage.head(key)
        if info.size > MAX_IMAGE_BYTES:
            return None
        return storage.read_head_bytes(key, info.size)
    except ObjectNotFoundError:
        return None


def _faces(session: Session, storage: ObjectStore, job: Job) -> list[ReportFace]:
    rows = list(
        session.scalars(
            select(Explanation)
            .where(Explanation.job_id == job.id, Explanation.rank.is_not(None))
            .order_by(Explanation.rank)
        )
    )
    tracks = video_wide_tracks(session, job_id=job.id, rows=rows) if rows else {}
    faces = []
    for row in rows:
        crop = _image(storage, row.crop_key)
        if crop is None:
            continue
        faces.append(
            ReportFace(
                t=row.t,
                frame_index=row.frame_index,
                track=tracks.get(row.id),
                score=row.score,
                crop_jpeg=crop,
                heatmap_jpeg=_image(storage, row.heatmap_key),
            )
        )
    return faces


def build_job_report(session: Session, storage: ObjectStore, job: Job) -> Report:
    """The report of a succeeded job, from its stored rows and images."""
    video = job.video
    band = None
    if job.inconclusive_low is not None and job.inconclusive_high is not None:
        band = (job.inconclusive_low, job.inconclusive_high)
    frames = list(session.scalars(select(Frame).where(Frame.job_id == job.id).order_by(Frame.frame_index)))
    segments = list(
        session.scalars(select(Segment).where(Segment.job_id == job.id).order_by(Segment.segment_index))
    )
    tracks = list(session.scalars(select(Track).where(Track.job_id == job.id).order_by(Track.track_id)))
    assert job.verdict is not None and job.finished_at is not None  # a succeeded job has both
    return build_report(
        analysed_at=job.finished_at,
        job_id=str(job.id),
        input=ReportInput(
            name=_input_name(job), size_bytes=video.size_bytes, sha256=video.sha256, source=video.source_uri
        ),
        verdict=job.verdict,
        score=job.score,
        threshold=job.threshold,
        inconclusive_band=band,
        aggregation=job.aggregation,
        model={
            "name": job.model_name,
            "version": job.model_version,
            "sha256": job.model_sha256,
            "trained": job.model_trained,
        },
        caveat=job.model_caveat,
        video=video,
        media_type=job.media_type,
        settings=job.analysis_settings or job.options,
        timings=job.timings,
        frames=[
            ReportFrame(t=row.t, index=row.frame_index, score=row.score, faces=len(row.faces or []))
            for row in frames
        ],
        segments=[
            ReportSegment(
                index=row.segment_index,
                start_s=row.start_s,
                end_s=row.end_s,
                frames=row.frame_count,
                faces=row.face_count,
                score=row.score,
            )
            for row in segments
        ],
        tracks=[
            ReportTrack(
                id=row.track_id, first_t=row.first_t, last_t=row.last_t, faces=row.faces, score=row.score
            )
            for row in tracks
        ],
        faces=_faces(session, storage, job),
    )


def job_report(
    session: Session, storage: ObjectStore, *, tenant_id: uuid.UUID, job_id: str
) -> tuple[Job, str]:
    """The tenant's job and its report; 409 ``job_not_finished`` until the job has succeeded."""
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    if job.status != JobStatus.SUCCEEDED:
        raise ConflictError(
            f"the job is {job.status}; its report is ready once it has succeeded", code="job_not_finished"
        )
    return job, render_report(build_job_report(session, storage, job))
