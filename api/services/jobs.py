"""Jobs: create (idempotently), read, page, cancel and delete, always within one tenant."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from sqlalchemy import delete, exists, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.pagination import decode_cursor, encode_cursor
from api.schemas.jobs import JobOptions
from api.services.limits import ensure_in_flight_capacity
from api.services.webhooks import check_callback_url
from core.config import Settings
from core.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    ObjectNotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from core.jobs import cancel_job, mark_enqueued
from core.logs import log_event
from core.media import SNIFF_BYTES, sniff_container
from core.models import Frame, Job, Segment, Track, Upload, Video
from core.queue import enqueue_probe
from core.states import JobStatus
from core.statistics import artifact_keys
from core.storage import ObjectStore, get_source_store, parse_s3_uri

__all__ = [
    "VideoDraft",
    "cancel",
    "create_job",
    "delete_job",
    "enqueue_job",
    "find_replay",
    "get_job",
    "list_frames",
    "list_jobs",
    "list_segments",
    "list_tracks",
    "request_hash",
    "resolve_options",
    "resolve_source",
    "resolve_upload",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoDraft:
    """What the API learned about a job's input before the job exists."""

    video_id: uuid.UUID
    owned: bool
    storage_key: str | None
    source_uri: str | None
    filename: str | None
    size_bytes: int | None
    sha256: str | None
    container: str | None


def request_hash(document: dict[str, Any]) -> str:
    """Hash of a request's meaning (not its bytes): key order and whitespace do not matter."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def resolve_options(options: JobOptions, settings: Settings) -> dict[str, float]:
    """The analysis options a job runs with: the request's, or the service's defaults, within bounds.
    The callback URL is checked here too, so a bad one is refused before storage is touched."""
    check_callback_url(options.callback_url, settings=settings)
    sample_fps = options.sample_fps if options.sample_fps is not None else settings.default_sample_fps
    segment_seconds = (
        options.segment_seconds if options.segment_seconds is not None else settings.default_segment_seconds
    )
    if not settings.min_sample_fps <= sample_fps <= settings.max_sample_fps:
        raise InvalidRequestError(
            f"sample_fps must be between {settings.min_sample_fps} and {settings.max_sample_fps}",
            code="invalid_option",
        )
    if not settings.min_segment_seconds <= segment_seconds <= settings.max_segment_seconds:
        raise InvalidRequestError(
            "segment_seconds must be between "
            f"{settings.min_segment_seconds} and {settings.max_segment_seconds}",
            code="invalid_option",
        )
    return {"sample_fps": float(sample_fps), "segment_seconds": float(segment_seconds)}


def _check_head(head: bytes, size: int, *, settings: Settings, what: str) -> str:
    if size == 0:
        raise InvalidRequestError(f"{what} is empty", code="empty_file")
    if size > settings.max_upload_bytes:
        raise PayloadTooLargeError(
            f"{what} is {size} bytes, past the {settings.max_upload_bytes} byte limit", code="file_too_large"
        )
    container = sniff_container(head)
    if container is None or container not in settings.allowed_containers:
        raise UnsupportedMediaTypeError(
            f"{what} is not a video in a supported container "
            f"({', '.join(sorted(settings.allowed_containers))})",
            code="unsupported_format",
        )
    return container


def resolve_source(*, source: str, settings: Settings) -> VideoDraft:
    """Checks an ``s3://bucket/key`` source: allowed bucket, present, within limits, a video."""
    bucket, key = parse_s3_uri(source)
    own_prefix = f"{settings.storage_bucket}/{settings.storage_prefix}"
    if bucket not in settings.source_buckets or (
        settings.storage_url.startswith("s3://") and f"{bucket}/{key}".startswith(own_prefix)
    ):
        raise InvalidRequestError(f"the service may not read bucket {bucket!r}", code="source_not_allowed")
    store = get_source_store(settings, bucket)
    try:
        info = store.head(key)
        head = store.read_head_bytes(key, SNIFF_BYTES) if info.size else b""
    except ObjectNotFoundError as exc:
        raise InvalidRequestError(
            f"source {source} does not exist or is not readable", code="source_not_found"
        ) from exc
    container = _check_head(head, info.size, settings=settings, what=f"source {source}")
    return VideoDraft(
        video_id=uuid.uuid4(),
        owned=False,
        storage_key=None,
        source_uri=f"s3://{bucket}/{key}",
        filename=key.rsplit("/", 1)[-1][:255] or None,
        size_bytes=info.size,
        sha256=None,
        container=container,
    )


def resolve_upload(
    session: Session, *, tenant_id: uuid.UUID, upload_id: uuid.UUID, storage: ObjectStore, settings: Settings
) -> VideoDraft:
    """Checks a direct upload: this tenant's, unused, filled, within limits, a video."""
    upload = session.scalar(select(Upload).where(Upload.id == upload_id, Upload.tenant_id == tenant_id))
    if upload is None:
        raise NotFoundError("no upload with this id", code="upload_not_found")
    if upload.consumed_at is not None:
        raise ConflictError("this upload already belongs to a job", code="upload_consumed")
    try:
        info = storage.head(upload.storage_key)
        head = storage.read_head_bytes(upload.storage_key, SNIFF_BYTES) if info.size else b""
    except ObjectNotFoundError as exc:
        raise ConflictError(
            "nothing has been uploaded for this upload_id yet", code="upload_incomplete"
        ) from exc
    container = _check_head(head, info.size, settings=settings, what="the uploaded file")
    return VideoDraft(
        video_id=upload.id,
        owned=True,
        storage_key=upload.storage_key,
        source_uri=None,
        filename=upload.filename,
        size_bytes=info.size,
        sha256=None,
        container=container,
    )


def _replay(job: Job, request_digest: str) -> Job:
    if job.request_hash != request_digest:
        raise ConflictError(
            "this Idempotency-Key was used with a different request", code="idempotency_key_reused"
        )
    return job


def _find_by_idempotency_key(session: Session, *, tenant_id: uuid.UUID, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key))


def find_replay(
    session: Session, *, tenant_id: uuid.UUID, idempotency_key: str | None, request_digest: str
) -> Job | None:
    """The job an earlier identical request made, None when the key is new, ConflictError when
    the key came with a different request."""
    if idempotency_key is None:
        return None
    existing = _find_by_idempotency_key(session, tenant_id=tenant_id, key=idempotency_key)
    return None if existing is None else _replay(existing, request_digest)


def create_job(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    draft: VideoDraft,
    options: JobOptions,
    settings: Settings,
    idempotency_key: str | None,
    request_digest: str,
    upload_id: uuid.UUID | None = None,
) -> tuple[Job, bool]:
    """Stores the video and job rows. Returns (job, created); an earlier job with the same
    Idempotency-Key and request comes back with created=False. Commits."""
    existing = find_replay(
        session, tenant_id=tenant_id, idempotency_key=idempotency_key, request_digest=request_digest
    )
    if existing is not None:
        return existing, False
    resolved = resolve_options(options, settings)
    ensure_in_flight_capacity(session, tenant_id=tenant_id, adding=1, settings=settings)
    video = Video(
        id=draft.video_id,
        tenant_id=tenant_id,
        storage_key=draft.storage_key,
        source_uri=draft.source_uri,
        owned=draft.owned,
        filename=draft.filename,
        size_bytes=draft.size_bytes,
        sha256=draft.sha256,
        container=draft.container,
    )
    job = Job(
        tenant_id=tenant_id,
        video=video,
        status=JobStatus.QUEUED.value,
        options=resolved,
        idempotency_key=idempotency_key,
        request_hash=request_digest,
        callback_url=options.callback_url,
        external_id=options.external_id,
    )
    session.add(job)
    if upload_id is not None:
        claimed = session.execute(
            update(Upload)
            .where(Upload.id == upload_id, Upload.tenant_id == tenant_id, Upload.consumed_at.is_(None))
            .values(consumed_at=datetime.now(UTC))
            .execution_options(synchronize_session=False)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            session.rollback()
            if idempotency_key is not None:  # a concurrent replay of this very request consumed it
                existing = _find_by_idempotency_key(session, tenant_id=tenant_id, key=idempotency_key)
                if existing is not None:
                    return _replay(existing, request_digest), False
            raise ConflictError("this upload already belongs to a job", code="upload_consumed")
    try:
        session.commit()
    except IntegrityError:
        # Two requests with one Idempotency-Key raced; the unique key let exactly one in.
        session.rollback()
        if idempotency_key is None:
            raise
        existing = _find_by_idempotency_key(session, tenant_id=tenant_id, key=idempotency_key)
        if existing is None:
            raise
        return _replay(existing, request_digest), False
    log_event(
        log,
        "job.create.succeeded",
        job_id=str(job.id),
        tenant_id=str(tenant_id),
        owned=draft.owned,
        size_bytes=draft.size_bytes,
    )
    return job, True


def enqueue_job(session: Session, celery: Celery, *, job: Job, settings: Settings) -> bool:
    """Sends the probe message. A broker outage is not the client's problem: the job row is
    stored, and the reconciler sends the message once the broker is back."""
    try:
        enqueue_probe(celery, job_id=job.id, timeout_s=settings.enqueue_timeout_s)
    except Exception as exc:  # kombu raises many types; the reconciler recovers all of them
        log_event(
            log,
            "job.enqueue.failed",
            level=logging.WARNING,
            job_id=str(job.id),
            error=f"{type(exc).__name__}: {exc}"[:300],
        )
        return False
    mark_enqueued(session, job_id=job.id)
    session.commit()
    return True


def _parse_job_id(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(job_id)
    except ValueError as exc:
        raise NotFoundError("no job with this id", code="job_not_found") from exc


def get_job(session: Session, *, tenant_id: uuid.UUID, job_id: str) -> Job:
    """The tenant's job; another tenant's job is reported missing, never forbidden."""
    job = session.scalar(select(Job).where(Job.id == _parse_job_id(job_id), Job.tenant_id == tenant_id))
    if job is None:
        raise NotFoundError("no job with this id", code="job_not_found")
    return job


def list_jobs(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    status: JobStatus | None,
    cursor: str | None,
    limit: int,
    external_id: str | None = None,
) -> tuple[list[Job], str | None]:
    """Newest first."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Job.status == status.value)
    if external_id is not None:
        query = query.where(Job.external_id == external_id)
    if cursor is not None:
        created_raw, id_raw = decode_cursor(cursor, arity=2)
        try:
            created_at, last_id = datetime.fromisoformat(str(created_raw)), uuid.UUID(str(id_raw))
        except ValueError as exc:
            raise InvalidRequestError("cursor is not one this API returned", code="invalid_cursor") from exc
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(created_at, last_id))
    rows = list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at.isoformat(), str(rows[-1].id))
    return rows, next_cursor


def _int_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    (value,) = decode_cursor(cursor, arity=1)
    if not isinstance(value, int):
        raise InvalidRequestError("cursor is not one this API returned", code="invalid_cursor")
    return value


def _page_of_job_rows(
    session: Session, *, column: Any, job_id: uuid.UUID, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """One page of a job's rows (segments, frames or tracks), ordered by their integer ``column``."""
    model = column.class_
    after = _int_cursor(cursor)
    query = select(model).where(model.job_id == job_id)
    if after is not None:
        query = query.where(column > after)
    rows = list(session.scalars(query.order_by(column).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], encode_cursor(getattr(rows[limit - 1], column.key))
    return rows, None


def list_segments(
    session: Session, *, tenant_id: uuid.UUID, job_id: str, cursor: str | None, limit: int
) -> tuple[list[Segment], str | None]:
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    return _page_of_job_rows(session, column=Segment.segment_index, job_id=job.id, cursor=cursor, limit=limit)


def list_frames(
    session: Session, *, tenant_id: uuid.UUID, job_id: str, cursor: str | None, limit: int
) -> tuple[list[Frame], str | None]:
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    return _page_of_job_rows(session, column=Frame.frame_index, job_id=job.id, cursor=cursor, limit=limit)


def list_tracks(
    session: Session, *, tenant_id: uuid.UUID, job_id: str, cursor: str | None, limit: int
) -> tuple[list[Track], str | None]:
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    return _page_of_job_rows(session, column=Track.track_id, job_id=job.id, cursor=cursor, limit=limit)


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
