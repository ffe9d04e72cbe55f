"""Webhook deliveries: the event types, their thin payloads, and the delivery rows a job's end, a
batch's completion or a review queues in the caller's transaction.

Each delivery is a small state machine (``lifecycle.transitions``): pending until an attempt
succeeds or the schedule runs out. The rows are marked dispatched and their first messages leave
once the transaction commits (``lifecycle.outbox``); signing is ``core.webhooks``'.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core import verdicts
from core.models import Batch, Job, JobReview, WebhookDelivery, WebhookEndpoint
from lifecycle.outbox import send_after_commit

__all__ = [
    "EVENT_TYPES",
    "DeliveryStatus",
    "EndedJob",
    "EventType",
    "batch_payload",
    "job_payload",
    "queue_batch_deliveries",
    "queue_job_deliveries",
    "queue_review_deliveries",
    "review_payload",
]


class EventType(StrEnum):
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELED = "job.canceled"
    BATCH_COMPLETED = "batch.completed"
    JOB_REVIEWED = "job.reviewed"


EVENT_TYPES = tuple(event.value for event in EventType)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or being attempted)
    SUCCEEDED = "succeeded"  # a 2xx answer
    FAILED = "failed"  # the schedule ran out, the receiver answered 410, or it may not be called


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def job_payload(
    *,
    event: EventType,
    job_id: uuid.UUID,
    status: str,
    verdict: str | None,
    score: float | None,
    external_id: str | None,
    batch_id: uuid.UUID | None,
    error_code: str | None,
    at: datetime,
) -> dict[str, Any]:
    """A thin event: enough to act on, the rest is one GET /v1/jobs/{id} away."""
    data: dict[str, Any] = {
        "job_id": str(job_id),
        "status": status,
        "verdict": verdict,
        "verdict_label": verdicts.label(verdict),
        "score": score,
        "external_id": external_id,
        "batch_id": str(batch_id) if batch_id else None,
    }
    if error_code is not None:
        data["error_code"] = error_code
    return {"type": event.value, "timestamp": _iso(at), "data": data}


def batch_payload(*, batch: Batch, counts: dict[str, int], at: datetime) -> dict[str, Any]:
    return {
        "type": EventType.BATCH_COMPLETED.value,
        "timestamp": _iso(at),
        "data": {
            "batch_id": str(batch.id),
            "name": batch.name,
            "status": batch.status,
            "jobs_total": batch.jobs_total,
            "counts": counts,
        },
    }


def review_payload(*, job: Job, review: JobReview, at: datetime) -> dict[str, Any]:
    """Thin like the job events: the two verdicts and who reviewed when; the note is one GET away."""
    return {
        "type": EventType.JOB_REVIEWED.value,
        "timestamp": _iso(at),
        "data": {
            "job_id": str(job.id),
            "verdict": job.verdict,
            "verdict_label": verdicts.label(job.verdict),
            "score": job.score,
            "external_id": job.external_id,
            "batch_id": str(job.batch_id) if job.batch_id else None,
            "review": {
                "label": review.label,
                "reviewer": review.reviewer,
                "api_key_prefix": review.api_key_prefix,
                "reviewed_at": _iso(review.reviewed_at),
            },
        },
    }


def _destinations(
    session: Session, *, tenant_id: uuid.UUID, event: EventType, callback_url: str | None
) -> list[tuple[uuid.UUID | None, str]]:
    """(endpoint id, url) for every receiver of the event: the callback URL, then the tenant's
    active endpoints subscribed to it."""
    rows = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.url).where(
            WebhookEndpoint.tenant_id == tenant_id,
            WebhookEndpoint.is_active.is_(True),
            WebhookEndpoint.event_types.contains([event.value]),
        )
    ).all()
    destinations: list[tuple[uuid.UUID | None, str]] = []
    if callback_url:
        destinations.append((None, callback_url))
    destinations.extend((row[0], row[1]) for row in rows)
    return destinations


def _delivery_row(
    *,
    tenant_id: uuid.UUID,
    event: EventType,
    payload: dict[str, Any],
    destination: tuple[uuid.UUID | None, str],
    now: datetime,
    job_id: uuid.UUID | None = None,
    batch_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    endpoint_id, url = destination
    return {
        "id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "endpoint_id": endpoint_id,
        "destination": "callback" if endpoint_id is None else "endpoint",
        "url": url,
        "event_type": event.value,
        "job_id": job_id,
        "batch_id": batch_id,
        "payload": payload,
        "status": DeliveryStatus.PENDING.value,
        "next_attempt_at": now,
    }


def _insert_deliveries(session: Session, rows: list[dict[str, Any]]) -> list[uuid.UUID]:
    """Inserts the rows; their messages leave as soon as the caller's transaction commits."""
    ids = [row["id"] for row in rows]
    if rows:
        sent_on_commit = set(send_after_commit(session, ids))
        for row in rows:
            row["dispatched_at"] = row["next_attempt_at"] if row["id"] in sent_on_commit else None
        session.execute(insert(WebhookDelivery), rows)
    return ids


_JOB_EVENTS = {
    "succeeded": EventType.JOB_SUCCEEDED,
    "failed": EventType.JOB_FAILED,
    "canceled": EventType.JOB_CANCELED,
}


@dataclass(frozen=True)
class EndedJob:
    id: uuid.UUID
    tenant_id: uuid.UUID
    status: str
    batch_id: uuid.UUID | None


def queue_job_deliveries(session: Session, *, job_ids: Sequence[uuid.UUID]) -> list[EndedJob]:
    """Queues each job's ``job.<status>`` deliveries in the caller's transaction (call it in the
    transaction that ended the jobs). Jobs that no longer exist are skipped. Does not commit."""
    if not job_ids:
        return []
    session.flush()
    # Columns, not ORM objects: the states were changed by UPDATEs the identity map has not seen.
    rows = session.execute(
        select(
            Job.id,
            Job.tenant_id,
            Job.status,
            Job.verdict,
            Job.score,
            Job.external_id,
            Job.batch_id,
            Job.callback_url,
            Job.error_code,
        ).where(Job.id.in_(list(job_ids)))
    ).all()
    now = datetime.now(UTC)
    endpoints: dict[tuple[uuid.UUID, EventType], list[tuple[uuid.UUID | None, str]]] = {}
    deliveries: list[dict[str, Any]] = []
    ended: list[EndedJob] = []
    for row in rows:
        event = _JOB_EVENTS.get(row.status)
        if event is None:
            raise ValueError(f"job {row.id} has not ended (status {row.status})")
        if (row.tenant_id, event) not in endpoints:
            endpoints[row.tenant_id, event] = _destinations(
                session, tenant_id=row.tenant_id, event=event, callback_url=None
            )
        destinations = endpoints[row.tenant_id, event]
        if row.callback_url:
            destinations = [(None, row.callback_url), *destinations]
        payload = job_payload(
            event=event,
            job_id=row.id,
            status=row.status,
            verdict=row.verdict,
            score=row.score,
            external_id=row.external_id,
            batch_id=row.batch_id,
            error_code=row.error_code,
            at=now,
        )
        deliveries.extend(
            _delivery_row(
                tenant_id=row.tenant_id,
                event=event,
                payload=payload,
                destination=destination,
                now=now,
                job_id=row.id,
                batch_id=row.batch_id,
            )
            for destination in destinations
        )
        ended.append(EndedJob(id=row.id, tenant_id=row.tenant_id, status=row.status, batch_id=row.batch_id))
    _insert_deliveries(session, deliveries)
    return ended


def queue_batch_deliveries(session: Session, *, batch: Batch, counts: dict[str, int]) -> list[uuid.UUID]:
    """Queues the batch's ``batch.completed`` deliveries in the caller's transaction."""
    now = datetime.now(UTC)
    payload = batch_payload(batch=batch, counts=counts, at=now)
    destinations = _destinations(
        session, tenant_id=batch.tenant_id, event=EventType.BATCH_COMPLETED, callback_url=batch.callback_url
    )
    rows = [
        _delivery_row(
            tenant_id=batch.tenant_id,
            event=EventType.BATCH_COMPLETED,
            payload=payload,
            destination=destination,
            now=now,
            batch_id=batch.id,
        )
        for destination in destinations
    ]
    return _insert_deliveries(session, rows)


def queue_review_deliveries(session: Session, *, job: Job, review: JobReview) -> list[uuid.UUID]:
    """Queues ``job.reviewed`` for the tenant's endpoints subscribed to it, in the caller's
    transaction. Not for the job's ``callback_url``: that one is told when the job ends, and its
    receivers may take any call as that end."""
    now = datetime.now(UTC)
    payload = review_payload(job=job, review=review, at=now)
    destinations = _destinations(
        session, tenant_id=job.tenant_id, event=EventType.JOB_REVIEWED, callback_url=None
    )
    rows = [
        _delivery_row(
            tenant_id=job.tenant_id,
            event=EventType.JOB_REVIEWED,
            payload=payload,
            destination=destination,
            now=now,
            job_id=job.id,
            batch_id=job.batch_id,
        )
        for destination in destinations
    ]
    return _insert_deliveries(session, rows)
