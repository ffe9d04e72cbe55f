"""Jobs once submitted: read, page, cancel and delete, always within one tenant.

Pages are the job list and a job's segments, frames and tracks (``api.pagination``).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session, joinedload, selectinload

from api.filters import JobFilters
from api.pagination import PageRequest, keyset_page
from core.errors import ConflictError, NotFoundError
from core.logs import log_event
from core.models import Frame, Job, Segment, Track, Upload, Video
from core.states import JobStatus
from core.storage import ObjectStore
from lifecycle.jobs import cancel_job
from lifecycle.statistics import artifact_keys

__all__ = [
    "cancel",
    "delete_job",
    "get_job",
    "list_jobs",
    "list_results",
]

log = logging.getLogger(__name__)


def _parse_job_id(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(job_id)
    except ValueError as exc:
        raise NotFoundError("no job with this id", code="job_not_found") from exc


def get_job(session: Session, *, tenant_id: uuid.UUID, job_id: str) -> Job:
    """The tenant's job; another tenant's job is reported missing, never forbidden."""
    # The review comes in the same round trip: every answer about a succeeded job shows it.
    job = session.scalar(
        select(Job)
        .options(joinedload(Job.review))
        .where(Job.id == _parse_job_id(job_id), Job.tenant_id == tenant_id)
    )
    if job is None:
        raise NotFoundError("no job with this id", code="job_not_found")
    return job


def list_jobs(
    session: Session, *, tenant_id: uuid.UUID, filters: JobFilters, page: PageRequest
) -> tuple[list[Job], str | None]:
    """The tenant's jobs that pass ``filters``, newest first."""
    # Reviews in one more query per page, not one per job.
    query = select(Job).options(selectinload(Job.review)).where(Job.tenant_id == tenant_id)
    if filters.statuses:
        query = query.where(Job.status.in_(filters.statuses))
    if filters.verdicts:
        query = query.where(Job.verdict.in_(filters.verdicts))
    if filters.media_types:
        query = query.where(Job.media_type.in_(filters.media_types))
    if filters.created_from is not None:
        query = query.where(Job.created_at >= filters.created_from)
    if filters.created_before is not None:
        query = query.where(Job.created_at < filters.created_before)
    if filters.external_id is not None:
        query = query.where(Job.external_id == filters.external_id)
    if filters.batch_id is not None:
        query = query.where(Job.batch_id == filters.batch_id)
    return keyset_page(session, query, keys=(Job.created_at, Job.id), page=page, newest_first=True)


# A job's results come in pages of their rows, each kind ordered by its own index.
_RESULT_ORDER: dict[str, Any] = {
    "segments": Segment.segment_index,
    "frames": Frame.frame_index,
    "tracks": Track.track_id,
}


def list_results(
    session: Session, *, tenant_id: uuid.UUID, job_id: str, kind: str, page: PageRequest
) -> tuple[list[Any], str | None]:
    """One page of the job's ``kind`` rows (segments, frames or tracks), in index order."""
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    order = _RESULT_ORDER[kind]
    model = order.class_
    return keyset_page(session, select(model).where(model.job_id == job.id), keys=(order,), page=page)


def cancel(session: Session, *, tenant_id: uuid.UUID, job_id: str) -> Job:
    """Cancels a queued or processing job; canceling a canceled job is a no-op. Commits."""
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    if cancel_job(session, job_id=job.id):
        session.commit()
        log_event(log, "job.cancel.succeeded", job_id=str(job.id))
    else:
        session.rollback()
    session.refresh(job)
    if job.status == JobStatus.CANCELED:
        return job
    raise ConflictError(
        f"the job has already {job.status}; only queued or processing jobs can be canceled",
        code="job_finished",
    )


def delete_job(session: Session, *, tenant_id: uuid.UUID, job_id: str, storage: ObjectStore) -> None:
    """Removes the stored video and every row of the job. Commits.

    The job is canceled first (so no worker starts new work on it), then the object goes, then
    the rows; a failure to reach storage leaves the rows in place so the call can be repeated.
    """
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    if cancel_job(session, job_id=job.id):
        session.commit()
    video = job.video
    if video.owned and video.storage_key:
        storage.delete(video.storage_key)
    # Heatmaps and statistics beside the video (kept for S3-sourced videos too).
    for key in artifact_keys(session, job_id=job.id):
        storage.delete(key)
    # Workers lock the job row before writing results, so this waits for an in-flight write.
    session.execute(delete(Job).where(Job.id == job.id, Job.tenant_id == tenant_id))
    session.execute(delete(Video).where(Video.id == video.id, ~exists().where(Job.video_id == video.id)))
    session.execute(delete(Upload).where(Upload.id == video.id, Upload.tenant_id == tenant_id))
    session.commit()
    log_event(log, "job.delete.succeeded", job_id=str(job.id), owned=video.owned)
