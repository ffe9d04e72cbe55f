"""Batches: manifests in, one backlog-priority job per item, progress, cancel and streamed results,
always within one tenant; and the per-tenant limit on jobs in flight."""

from __future__ import annotations

import csv
import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import unquote

from celery import Celery
from pydantic import ValidationError
from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.errors import validation_message
from api.pagination import decode_cursor, encode_cursor
from api.schemas.batches import BatchCounts, BatchCreate, BatchItem, BatchPublic, BatchVerdicts
from api.schemas.jobs import JobOptions
from api.services.jobs import request_hash, resolve_options
from api.services.limits import ensure_in_flight_capacity
from api.services.webhooks import check_callback_url
from core.batches import BatchStatus, job_counts
from core.config import Settings
from core.db import get_session_factory
from core.egress import EgressError, check_url_statically
from core.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
)
from core.jobs import cancel_batch_jobs
from core.logs import log_event
from core.models import Batch, Job, Video
from core.queue import enqueue_probe
from core.states import JobStatus, Verdict
from core.storage import parse_s3_uri

__all__ = [
    "RESULT_COLUMNS",
    "BatchSummary",
    "cancel_batch",
    "create_batch",
    "enqueue_batch",
    "find_batch_replay",
    "get_batch",
    "list_batches",
    "manifest_kind",
    "parse_manifest",
    "public_batch",
    "stream_results",
    "summarize",
]

log = logging.getLogger(__name__)

ManifestFormat = Literal["json", "csv", "jsonl"]
RESULT_COLUMNS = (
    "index",
    "job_id",
    "external_id",
    "source",
    "status",
    "verdict",
    "score",
    "threshold",
    "error_code",
    "error_message",
    "model_version",
    "created_at",
    "started_at",
    "finished_at",
)
_RESULTS_PAGE = 1000
_ENQUEUE_MARK_EVERY = 500
# Spreadsheet programs run cells that start with these as formulas.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# --- manifests ---------------------------------------------------------------------------------


def _item_error(index: int, message: str, code: str = "invalid_item") -> InvalidRequestError:
    return InvalidRequestError(f"items[{index}]: {message}", code=code)


def _parse_csv(body: bytes) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError("the CSV manifest is not UTF-8", code="invalid_manifest") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [name.strip() for name in reader.fieldnames or []]
    if "source" not in fields:
        raise InvalidRequestError(
            "the CSV manifest needs a header row with a 'source' column (and optionally 'external_id')",
            code="invalid_manifest",
        )
    unknown = sorted(set(fields) - {"source", "external_id"})
    if unknown:
        raise InvalidRequestError(f"unknown CSV columns {unknown}", code="invalid_manifest")
    reader.fieldnames = fields
    items = []
    try:
        for row in reader:
            if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
                continue  # blank lines
            if None in row:
                raise InvalidRequestError(
                    f"CSV line {reader.line_num} has more cells than the header", code="invalid_manifest"
                )
            items.append({key: value for key, value in row.items() if value not in (None, "")})
    except csv.Error as exc:
        raise InvalidRequestError(f"the CSV manifest is malformed: {exc}", code="invalid_manifest") from exc
    return items


def _parse_jsonl(body: bytes) -> list[dict[str, Any]]:
    items = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequestError(f"JSONL line {number} is not JSON", code="invalid_manifest") from exc
        if not isinstance(item, dict):
            raise InvalidRequestError(f"JSONL line {number} is not an object", code="invalid_manifest")
        items.append(item)
    return items


def parse_manifest(body: bytes, *, kind: ManifestFormat, query: dict[str, Any]) -> BatchCreate:
    """A JSON request body, or a CSV/JSONL manifest with the batch's fields in ``query``."""
    try:
        if kind == "json":
            return BatchCreate.model_validate_json(body)
        items = _parse_csv(body) if kind == "csv" else _parse_jsonl(body)
        if not items:
            raise InvalidRequestError("the manifest has no items", code="empty_manifest")
        return BatchCreate.model_validate({**query, "items": items})
    except ValidationError as exc:
        raise InvalidRequestError(validation_message(exc.errors()), code="validation_error") from exc


@dataclass(frozen=True)
class _Source:
    uri: str
    filename: str | None


def _check_item(index: int, item: BatchItem, *, settings: Settings) -> _Source:
    scheme = item.source.split(":", 1)[0].lower()
    if scheme == "s3":
        try:
            bucket, key = parse_s3_uri(item.source)
        except InvalidRequestError as exc:
            raise _item_error(index, exc.message, "invalid_source") from exc
        own_prefix = f"{settings.storage_bucket}/{settings.storage_prefix}"
        if bucket not in settings.source_buckets or (
            settings.storage_url.startswith("s3://") and f"{bucket}/{key}".startswith(own_prefix)
        ):
            raise _item_error(index, f"the service may not read bucket {bucket!r}", "source_not_allowed")
        return _Source(uri=f"s3://{bucket}/{key}", filename=key.rsplit("/", 1)[-1][:255] or None)
    if scheme == "https":
        try:
            parts = check_url_statically(
                item.source, allow_private=settings.webhook_allow_private, schemes=("https",)
            )
        except EgressError as exc:
            raise _item_error(index, exc.message, exc.code) from exc
        name = unquote(parts.path.rsplit("/", 1)[-1]).replace("\\", "_")[:255]
        return _Source(uri=item.source, filename=name or None)
    raise _item_error(index, "source must be s3://bucket/key or an https:// URL", "invalid_source")


# --- create ------------------------------------------------------------------------------------


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


def create_batch(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    request: BatchCreate,
    settings: Settings,
    idempotency_key: str | None,
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
    sources = [_check_item(index, item, settings=settings) for index, item in enumerate(request.items)]

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
        video_id = uuid.uuid4()
        video_rows.append(
            {
                "id": video_id,
                "tenant_id": tenant_id,
                "source_uri": source.uri,
                "owned": False,
                "filename": source.filename,
            }
        )
        job_rows.append(
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "video_id": video_id,
                "status": JobStatus.QUEUED.value,
                "options": options,
                "external_id": item.external_id,
                "batch_id": batch.id,
                "batch_index": index,
                "priority": settings.batch_priority,
            }
        )
    session.execute(insert(Video), video_rows)
    session.execute(insert(Job), job_rows)
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


# --- read --------------------------------------------------------------------------------------


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
    session: Session, *, tenant_id: uuid.UUID, cursor: str | None, limit: int
) -> tuple[list[Batch], str | None]:
    """Newest first."""
    query = select(Batch).where(Batch.tenant_id == tenant_id)
    if cursor is not None:
        created_raw, id_raw = decode_cursor(cursor, arity=2)
        try:
            created_at, last_id = datetime.fromisoformat(str(created_raw)), uuid.UUID(str(id_raw))
        except ValueError as exc:
            raise InvalidRequestError("cursor is not one this API returned", code="invalid_cursor") from exc
        query = query.where(tuple_(Batch.created_at, Batch.id) < tuple_(created_at, last_id))
    rows = list(session.scalars(query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at.isoformat(), str(rows[-1].id))
    return rows, next_cursor


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


# --- results -----------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_PREFIXES):
        return "'" + text
    return text


def _record(row: Any) -> dict[str, Any]:
    return {
        "index": row.batch_index,
        "job_id": str(row.id),
        "external_id": row.external_id,
        "source": row.source_uri,
        "status": row.status,
        "verdict": row.verdict,
        "score": row.score,
        "threshold": row.threshold,
        "error_code": row.error_code,
        "error_message": row.error_message,
        "model_version": row.model_version,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


def stream_results(
    settings: Settings, *, tenant_id: uuid.UUID, batch_id: uuid.UUID, fmt: Literal["csv", "jsonl"]
) -> Iterator[bytes]:
    """The batch's items in order, one CSV row or JSON line each, read a page at a time (a batch
    of any size streams in constant memory). Opens its own sessions: it runs after the request's
    dependencies have closed theirs."""
    factory = get_session_factory(settings)
    if fmt == "csv":
        header = io.StringIO()
        csv.writer(header, lineterminator="\r\n").writerow(RESULT_COLUMNS)
        yield header.getvalue().encode()
    after = -1
    while True:
        with factory() as session:
            rows = session.execute(
                select(
                    Job.batch_index,
                    Job.id,
                    Job.external_id,
                    Video.source_uri,
                    Job.status,
                    Job.verdict,
                    Job.score,
                    Job.threshold,
                    Job.error_code,
                    Job.error_message,
                    Job.model_version,
                    Job.created_at,
                    Job.started_at,
                    Job.finished_at,
                )
                .join(Video, Video.id == Job.video_id)
                .where(Job.batch_id == batch_id, Job.tenant_id == tenant_id, Job.batch_index > after)
                .order_by(Job.batch_index)
                .limit(_RESULTS_PAGE)
            ).all()
        if not rows:
            return
        chunk = io.StringIO()
        if fmt == "csv":
            writer = csv.writer(chunk, lineterminator="\r\n")
            for row in rows:
                writer.writerow([_cell(value) for value in _record(row).values()])
        else:
            for row in rows:
                chunk.write(json.dumps(_record(row), default=_json_default, ensure_ascii=False))
                chunk.write("\n")
        yield chunk.getvalue().encode()
        after = rows[-1].batch_index


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


def manifest_kind(content_type: str) -> ManifestFormat | None:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return "json"
    if media_type in ("text/csv", "application/csv"):
        return "csv"
    if media_type in (
        "application/x-ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    ):
        return "jsonl"
    return None
