"""A job's monitoring outputs, always within one tenant: its explanations and statistics.

Explanations are rows and the Grad-CAM images beside the video; statistics are the job's input
and output statistics.
"""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas.monitoring import ExplanationPublic, JobStatisticsPublic
from api.services.jobs import get_job
from core.errors import NotFoundError, ObjectNotFoundError
from core.models import Explanation, Frame, JobStatistics
from core.storage import ObjectStore
from lifecycle.statistics import statistics_document

__all__ = ["explanation_image", "get_statistics", "list_explanations", "video_wide_tracks"]

# Heatmaps and crops are small JPEGs; anything past this is not one of ours.
MAX_IMAGE_BYTES = 8 * 1024 * 1024
ImageKind = Literal["heatmap", "crop"]


def video_wide_tracks(session: Session, *, job_id: uuid.UUID, rows: list[Explanation]) -> dict[int, int]:
    """explanation id → the face's track id as stored on its frame (video-wide after finalize)."""
    frames = {
        frame.frame_index: frame
        for frame in session.scalars(
            select(Frame).where(Frame.job_id == job_id, Frame.frame_index.in_({r.frame_index for r in rows}))
        )
    }
    tracks = {}
    for row in rows:
        frame = frames.get(row.frame_index)
        if frame is not None and 0 <= row.face < len(frame.faces or []):
            tracks[row.id] = int(frame.faces[row.face]["track"])
    return tracks


def list_explanations(
    session: Session, *, tenant_id: uuid.UUID, job_id: str, include_unranked: bool = False
) -> list[ExplanationPublic]:
    """The job's top-k explanations by rank; with ``include_unranked``, every face any segment
    explained (most suspicious first)."""
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    query = select(Explanation).where(Explanation.job_id == job.id)
    if include_unranked:
        query = query.order_by(Explanation.score.desc(), Explanation.frame_index, Explanation.face)
    else:
        query = query.where(Explanation.rank.is_not(None)).order_by(Explanation.rank)
    rows = list(session.scalars(query))
    tracks = video_wide_tracks(session, job_id=job.id, rows=rows) if rows else {}
    return [ExplanationPublic.from_row(row, track=tracks.get(row.id)) for row in rows]


def explanation_image(
    session: Session,
    storage: ObjectStore,
    *,
    tenant_id: uuid.UUID,
    job_id: str,
    explanation_id: int,
    kind: ImageKind,
) -> bytes:
    """The JPEG of one explanation (``heatmap`` or ``crop``) of the tenant's job."""
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    row = session.scalar(
        select(Explanation).where(Explanation.id == explanation_id, Explanation.job_id == job.id)
    )
    if row is None:
        raise NotFoundError("no explanation with this id for this job", code="explanation_not_found")
    key = row.heatmap_key if kind == "heatmap" else row.crop_key
    try:
        info = storage.head(key)
        if info.size > MAX_IMAGE_BYTES:
            raise NotFoundError("the stored image is not a heatmap", code="explanation_not_found")
        return storage.read_head_bytes(key, info.size)
    except ObjectNotFoundError as exc:
        raise NotFoundError(
            "the image is no longer in storage (deleted or not written)", code="explanation_image_missing"
        ) from exc


def get_statistics(session: Session, *, tenant_id: uuid.UUID, job_id: str) -> JobStatisticsPublic:
    """The job's input and output statistics; 404 until the job has succeeded."""
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    row = session.get(JobStatistics, job.id)
    if row is None:
        raise NotFoundError(
            f"the job has no statistics (it is {job.status}; they are kept when it succeeds)",
            code="statistics_not_ready",
        )
    return JobStatisticsPublic.model_validate({**statistics_document(row), "stored_at": row.storage_key})
