"""Webhooks: event payloads, signing, secrets at rest, the outbox of deliveries and the retries.

Sending is the workers' part (``worker.webhooks``), through ``core.egress``. Signatures come from
the ``standardwebhooks`` package: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature:
v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with a ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import random
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from core import verdicts
from core.models import Batch, CallbackSecret, Job, JobReview, WebhookDelivery, WebhookEndpoint
from core.outbox import send_after_commit

__all__ = [
    "EVENT_TYPES",
    "DeliveryStatus",
    "EndedJob",
    "EventType",
    "SecretError",
    "batch_payload",
    "decrypt_secret",
    "encrypt_secret",
    "ensure_callback_secret",
    "job_payload",
    "message_id",
    "new_secret",
    "parse_retry_after",
    "record_batch_event",
    "record_job_event",
    "record_job_events",
    "record_review_event",
    "retry_delay_s",
    "review_payload",
    "secret_hint",
    "serialize_payload",
    "sign",
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


class SecretError(Exception):
    """A stored secret cannot be decrypted with this WEBHOOK_SECRETS_KEY."""


_SECRET_PREFIX = "whsec_"
_CIPHER_VERSION = "v1"


def new_secret() -> str:
    """A ``whsec_`` secret: 32 random bytes, base64 (what Standard Webhooks receivers expect)."""
    return _SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_hint(secret: str) -> str:
    return secret[: len(_SECRET_PREFIX) + 4]


def _cipher(key: SecretStr) -> AESGCM:
    # The setting is a passphrase of any length; AES-256 needs exactly 32 bytes.
    return AESGCM(hashlib.sha256(key.get_secret_value().encode()).digest())


def encrypt_secret(secret: str, *, key: SecretStr, context: str) -> str:
    """``context`` (the owning row's id) is authenticated, so a ciphertext copied onto another row
    does not decrypt there."""
    nonce = secrets.token_bytes(12)
    sealed = _cipher(key).encrypt(nonce, secret.encode(), context.encode())
    return f"{_CIPHER_VERSION}:{base64.b64encode(nonce + sealed).decode()}"


def decrypt_secret(stored: str, *, key: SecretStr, context: str) -> str:
    version, _, encoded = stored.partition(":")
    if version != _CIPHER_VERSION or not encoded:
        raise SecretError("the stored secret has an unknown format")
    try:
        raw = base64.b64decode(encoded)
        return _cipher(key).decrypt(raw[:12], raw[12:], context.encode()).decode()
    except (InvalidTag, ValueError) as exc:
        raise SecretError("the stored secret does not decrypt with WEBHOOK_SECRETS_KEY") from exc


def message_id(delivery_id: uuid.UUID) -> str:
    return f"msg_{delivery_id.hex}"


def serialize_payload(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed (compact; stored payloads are re-serialized the same way)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def sign(*, secret: str, msg_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


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


def record_job_events(session: Session, *, job_ids: Sequence[uuid.UUID]) -> list[EndedJob]:
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


def record_job_event(session: Session, *, job_id: uuid.UUID) -> EndedJob | None:
    """``record_job_events`` for one job."""
    ended = record_job_events(session, job_ids=[job_id])
    return ended[0] if ended else None


def record_batch_event(session: Session, *, batch: Batch, counts: dict[str, int]) -> list[uuid.UUID]:
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


def record_review_event(session: Session, *, job: Job, review: JobReview) -> list[uuid.UUID]:
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


def ensure_callback_secret(session: Session, *, tenant_id: uuid.UUID, key: SecretStr) -> str:
    """The tenant's callback signing secret, made on first use (safe against a concurrent maker).
    Does not commit."""
    stored = session.get(CallbackSecret, tenant_id, populate_existing=True)
    if stored is None:
        secret = new_secret()
        session.execute(
            insert(CallbackSecret)
            .values(
                tenant_id=tenant_id,
                secret_encrypted=encrypt_secret(secret, key=key, context=f"callback:{tenant_id}"),
                secret_hint=secret_hint(secret),
            )
            .on_conflict_do_nothing(index_elements=["tenant_id"])
        )
        stored = session.get(CallbackSecret, tenant_id, populate_existing=True)
        assert stored is not None
    return decrypt_secret(stored.secret_encrypted, key=key, context=f"callback:{tenant_id}")


def retry_delay_s(*, failed_attempts: int, schedule: Sequence[float], jitter: float) -> float | None:
    """Seconds before the next attempt after ``failed_attempts`` failures in a row; None when the
    schedule is spent. Jitter spreads the retries of many deliveries that failed together."""
    if failed_attempts < 1 or failed_attempts > len(schedule):
        return None
    base = float(schedule[failed_attempts - 1])
    return max(0.0, base * random.uniform(1.0 - jitter, 1.0 + jitter))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())
