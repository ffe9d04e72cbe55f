"""Batches: many videos as one request, one backlog-priority job per item.

Create (idempotently), read with progress, page and cancel, always within one tenant; the items'
probe messages are sent after the answer. The per-tenant limit on jobs in flight is
``api.services.limits``'; manifests and result exports have modules of their own.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from celery import Celery
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.pagination import PageRequest, keyset_page
from api.schemas.batches import BatchCounts, BatchCreate, BatchItem, BatchPublic, BatchVerdicts
from api.schemas.jobs import JobOptions
from api.services.batch_manifests import Source, check_item
from api.services.limits import ensure_in_flight_capacity
from api.services.sources import resolve_upload
from api.services.submit import request_hash, resolve_options
from api.services.uploads import delete_quietly
from api.services.webhooks import check_callback_url
from core.config import Settings
from core.db import get_session_factory
from core.errors import ConflictError, InvalidRequestError, NotFoundError, PayloadTooLargeError, ServiceError
from core.logs import log_event
from core.models import Batch, Job, Upload, Video
from core.queue import enqueue_probe
from core.states import JobStatus, Verdict
from core.storage import ObjectStore
from lifecycle.batches import BatchStatus, job_counts
from lifecycle.job_rows import new_job_values
from lifecycle.jobs import cancel_batch_jobs

__all__ = [
    "BatchSummary",
    "cancel_batch",
    "create_batch",
    "enqueue_batch",
    "find_batch_replay",
    "get_batch",
    "list_batches",
    "public_batch",
    "summarize",
]

log = logging.getLogger(__name__)

_ENQUEUE_MARK_EVERY = 500


def find_batch_replay(
    session: Session, *, tenant_id: uuid.UUID, idempotency_key: str | None, request_digest: str
) -> Batch | None:
    if idempotency_key is None:
        return None
    batch = session.scalar(
        select(Batch).where(Batch.tenant_id == tenant_id, Batch.idempotency_key == idempotency_key)
    )
    if batch is not None and batch.request_hash != request_digest:
        raise ConflictError(
            "this Idempotency-Key was used with a different request", code="idempotency_key_reused"
        )
    return batch


def _upload_item(
    session: Session,
    index: int,
    item: BatchItem,
    *,
    tenant_id: uuid.UUID,
    storage: ObjectStore | None,
    settings: Settings,
) -> Source:
    """An ``upload_id`` item: the tenant's finished, unused upload, a video within the limits."""
    assert item.upload_id is not None
    if storage is None:
        raise InvalidRequestError(f"items[{index}]: uploads cannot be batch items here", code="invalid_item")
    try:
        draft = resolve_upload(
            session, tenant_id=tenant_id, upload_id=item.upload_id, storage=storage, settings=settings
        )
    except ServiceError as exc:
        exc.message = f"items[{index}]: {exc.message}"
        raise
    return Source(
        uri=None,
        filename=draft.filename,
        video_id=draft.video_id,
        storage_key=draft.storage_key,
        size_bytes=draft.size_bytes,
        container=draft.container,
        superseded_key=draft.superseded_key,
    )


def create_batch(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    request: BatchCreate,
    settings: Settings,
    idempotency_key: str | None,
    storage: ObjectStore | None = None,
) -> tuple[Batch, bool]:
    """Stores the batch and one queued job per item at backlog priority. Returns (batch, created);
    an earlier batch with the same Idempotency-Key and request comes back with created=False.
    Every item is checked before anything is stored. Commits."""
    if len(request.items) > settings.batch_max_items:
        raise PayloadTooLargeError(
            f"a batch has at most {settings.batch_max_items} items; this one has {len(request.items)}",
            code="too_many_items",
        )
    digest = request_hash({"kind": "batch", **request.model_dump(mode="json", exclude_none=True)})
    replay = find_batch_replay(
        session, tenant_id=tenant_id, idempotency_key=idempotency_key, request_digest=digest
    )
    if replay is not None:
        return replay, False
    check_callback_url(request.callback_url, settings=settings)
    options = resolve_options(
        JobOptions(sample_fps=request.sample_fps, segment_seconds=request.segment_seconds), settings
    )
    sources = [
        _upload_item(session, index, item, tenant_id=tenant_id, storage=storage, settings=settings)
        if item.upload_id is not None
        else check_item(index, item, settings=settings)
        for index, item in enumerate(request.items)
    ]
    upload_ids = [item.upload_id for item in request.items if item.upload_id is not None]
    if len(set(upload_ids)) != len(upload_ids):
        raise InvalidRequestError("an upload may be one item of a batch only once", code="upload_consumed")

    ensure_in_flight_capacity(session, tenant_id=tenant_id, adding=len(sources), settings=settings)
    batch = Batch(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        name=request.name,
        callback_url=request.callback_url,
        status=BatchStatus.RUNNING.value,
        jobs_total=len(sources),
        jobs_finished=0,
        idempotency_key=idempotency_key,
        request_hash=digest,
    )
    session.add(batch)
    session.flush()
    video_rows = []
    job_rows = []
    for index, (item, source) in enumerate(zip(request.items, sources, strict=True)):
        video_id = source.video_id or uuid.uuid4()
        video_rows.append(
            {
                "id": video_id,
                "tenant_id": tenant_id,
                "source_uri": source.uri,
                "storage_key": source.storage_key,
                "owned": source.storage_key is not None,
                "filename": source.filename,
                "size_bytes": source.size_bytes,
                "container": source.container,
            }
        )
        job_rows.append(
            new_job_values(
                tenant_id=tenant_id,
                video_id=video_id,
                container=source.container,
                options=options,
                external_id=item.external_id,
                batch_id=batch.id,
                batch_index=index,
                priority=settings.batch_priority,
            )
        )
    session.execute(insert(Video), video_rows)
    session.execute(insert(Job), job_rows)
    if upload_ids:
        claimed = session.execute(
            update(Upload)
            .where(Upload.id.in_(upload_ids), Upload.tenant_id == tenant_id, Upload.consumed_at.is_(None))
            .values(consumed_at=datetime.now(UTC))
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != len(upload_ids):  # type: ignore[attr-defined]
            session.rollback()
            raise ConflictError("an upload of this batch already belongs to a job", code="upload_consumed")
    try:
        session.commit()
    except IntegrityError:
        # Two requests with one Idempotency-Key raced; the unique key let exactly one in.
        session.rollback()
        replay = find_batch_replay(
            session, tenant_id=tenant_id, idempotency_key=idempotency_key, request_digest=digest
        )
        if replay is None:
            raise
        return replay, False
    if storage is not None:
        for source in sources:
            if source.superseded_key is not None:
                delete_quietly(storage, source.superseded_key)
    log_event(
        log, "batch.create.succeeded", batch_id=str(batch.id), tenant_id=str(tenant_id), items=len(sources)
    )
    return batch, True


def enqueue_batch(settings: Settings, celery: Celery, *, batch_id: uuid.UUID) -> int:
    """Sends the probe message of every item not sent yet, in item order, at backlog priority.
    Runs after the answer; whatever it does not send (a broker outage, a crash), the reconciler
    sends later, since the jobs are stored."""
    sent = 0
    with get_session_factory(settings)() as session:
        pending = list(
            session.execute(
                select(Job.id, Job.priority)
                .where(
                    Job.batch_id == batch_id, Job.enqueued_at.is_(None), Job.status == JobStatus.QUEUED.value
                )
                .order_by(Job.batch_index)
            )
        )
        marked: list[uuid.UUID] = []
        try:
            for job_id, priority in pending:
                enqueue_probe(celery, job_id=job_id, timeout_s=settings.enqueue_timeout_s, priority=priority)
                marked.append(job_id)
                if len(marked) >= _ENQUEUE_MARK_EVERY:
                    sent += _mark_enqueued(session, marked)
                    marked = []
        except Exception as exc:  # kombu raises many types; the reconciler recovers all of them
            log_event(
                log,
                "batch.enqueue.failed",
                level=logging.WARNING,
                batch_id=str(batch_id),
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
        sent += _mark_enqueued(session, marked)
    log_event(log, "batch.enqueue.succeeded", batch_id=str(batch_id), sent=sent, items=len(pending))
    return sent


def _mark_enqueued(session: Session, job_ids: list[uuid.UUID]) -> int:
    if not job_ids:
        return 0
    session.execute(
        update(Job)
        .where(Job.id.in_(job_ids))
        .values(enqueued_at=func.now())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return len(job_ids)


def _parse_batch_id(batch_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(batch_id)
    except ValueError as exc:
        raise NotFoundError("no batch with this id", code="batch_not_found") from exc


def get_batch(session: Session, *, tenant_id: uuid.UUID, batch_id: str) -> Batch:
    """The tenant's batch; another tenant's is reported missing, never forbidden."""
    batch = session.scalar(
        select(Batch)
        .where(Batch.id == _parse_batch_id(batch_id), Batch.tenant_id == tenant_id)
        .execution_options(populate_existing=True)
    )
    if batch is None:
        raise NotFoundError("no batch with this id", code="batch_not_found")
    return batch


@dataclass(frozen=True)
class BatchSummary:
    batch: Batch
    counts: dict[str, int]
    verdicts: dict[str, int]
    estimated_completion_at: datetime | None


def summarize(session: Session, *, batch: Batch) -> BatchSummary:
    counts = job_counts(session, batch_id=batch.id)
    verdicts = {verdict.value: 0 for verdict in Verdict}
    for verdict, count in session.execute(
        select(Job.verdict, func.count())
        .where(Job.batch_id == batch.id, Job.status == JobStatus.SUCCEEDED.value, Job.verdict.is_not(None))
        .group_by(Job.verdict)
    ):
        verdicts[str(verdict)] = int(count)
    estimate = None
    finished = batch.jobs_finished
    if batch.status == BatchStatus.RUNNING.value and finished > 0:
        now = datetime.now(UTC)
        elapsed = (now - batch.created_at).total_seconds()
        remaining = batch.jobs_total - finished
        estimate = now + timedelta(seconds=elapsed / finished * remaining)
    return BatchSummary(batch=batch, counts=counts, verdicts=verdicts, estimated_completion_at=estimate)


def public_batch(summary: BatchSummary) -> BatchPublic:
    batch = summary.batch
    return BatchPublic(
        id=batch.id,
        name=batch.name,
        status=batch.status,  # type: ignore[arg-type]
        callback_url=batch.callback_url,
        jobs_total=batch.jobs_total,
        jobs_finished=batch.jobs_finished,
        progress=round(batch.jobs_finished / batch.jobs_total, 6) if batch.jobs_total else 1.0,
        counts=BatchCounts(**summary.counts),
        verdicts=BatchVerdicts(**summary.verdicts),
        estimated_completion_at=summary.estimated_completion_at,
        created_at=batch.created_at,
        canceled_at=batch.canceled_at,
        completed_at=batch.completed_at,
    )


def list_batches(
    session: Session, *, tenant_id: uuid.UUID, page: PageRequest
) -> tuple[list[Batch], str | None]:
    """Newest first."""
    query = select(Batch).where(Batch.tenant_id == tenant_id)
    return keyset_page(session, query, keys=(Batch.created_at, Batch.id), page=page, newest_first=True)


def cancel_batch(session: Session, *, tenant_id: uuid.UUID, batch_id: str) -> Batch:
    """Cancels every unfinished item; canceling a canceled batch is a no-op. Commits."""
    batch = get_batch(session, tenant_id=tenant_id, batch_id=batch_id)
    if batch.status == BatchStatus.CANCELED.value or batch.canceled_at is not None:
        return batch
    if batch.status != BatchStatus.RUNNING.value:
        raise ConflictError(
            f"the batch has already {batch.status}; only running batches can be canceled",
            code="batch_finished",
        )
    canceled = cancel_batch_jobs(session, batch_id=batch.id)
    session.commit()
    log_event(log, "batch.cancel.succeeded", batch_id=str(batch.id), jobs_canceled=len(canceled))
    return get_batch(session, tenant_id=tenant_id, batch_id=batch_id)
