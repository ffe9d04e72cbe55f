"""Webhook endpoints, callback secrets and the delivery log, always within one tenant."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from celery import Celery
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from api.pagination import PageRequest, keyset_page
from core.config import Settings
from core.egress.guard import EgressError, check_url_statically, resolve_checked
from core.errors import ConflictError, InvalidRequestError, NotFoundError
from core.logs import log_event
from core.models import Batch, CallbackSecret, Job, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from core.webhooks import encrypt_secret, ensure_callback_secret, new_secret, secret_hint
from lifecycle.deliveries import EVENT_TYPES, DeliveryStatus
from lifecycle.outbox import send_dispatched
from lifecycle.transitions import DELIVERY_ABANDON, DELIVERY_REDELIVER

__all__ = [
    "MAX_ENDPOINTS_PER_TENANT",
    "check_callback_url",
    "create_endpoint",
    "delete_endpoint",
    "enable_endpoint",
    "get_callback_secret",
    "get_delivery",
    "get_endpoint",
    "list_deliveries",
    "list_endpoints",
    "redeliver",
    "rotate_callback_secret",
]

log = logging.getLogger(__name__)

MAX_ENDPOINTS_PER_TENANT = 20


def check_callback_url(url: str | None, *, settings: Settings, field: str = "callback_url") -> None:
    """What can be refused when a callback URL is accepted, without DNS (every attempt resolves
    and checks again)."""
    if url is None:
        return
    try:
        check_url_statically(url, allow_private=settings.webhook_allow_private)
    except EgressError as exc:
        raise InvalidRequestError(f"{field}: {exc.message}", code=exc.code) from exc


def _check_endpoint_url(url: str, *, settings: Settings) -> None:
    try:
        parts = check_url_statically(url, allow_private=settings.webhook_allow_private)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        resolve_checked(parts.hostname or "", port, allow_private=settings.webhook_allow_private)
    except EgressError as exc:
        raise InvalidRequestError(f"url: {exc.message}", code=exc.code) from exc


def create_endpoint(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    url: str,
    description: str | None,
    event_types: list[str] | None,
    settings: Settings,
) -> tuple[WebhookEndpoint, str]:
    """Registers an endpoint; returns it with its secret (the only time the plaintext leaves).
    The URL's host is resolved and every address checked now, and again on every attempt. Commits."""
    _check_endpoint_url(url, settings=settings)
    count = session.scalar(
        select(func.count()).select_from(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
    )
    if (count or 0) >= MAX_ENDPOINTS_PER_TENANT:
        raise ConflictError(
            f"a tenant may register {MAX_ENDPOINTS_PER_TENANT} endpoints; delete one first",
            code="too_many_endpoints",
        )
    endpoint_id = uuid.uuid4()
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        tenant_id=tenant_id,
        url=url,
        description=description,
        event_types=list(event_types or EVENT_TYPES),
        secret_encrypted=encrypt_secret(
            secret, key=settings.webhook_secrets_key, context=f"endpoint:{endpoint_id}"
        ),
        secret_hint=secret_hint(secret),
    )
    session.add(endpoint)
    session.commit()
    log_event(log, "webhook.endpoint.created", endpoint_id=str(endpoint_id), tenant_id=str(tenant_id))
    return endpoint, secret


def _parse_id(raw: str, *, what: str, code: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise NotFoundError(f"no {what} with this id", code=code) from exc


def get_endpoint(session: Session, *, tenant_id: uuid.UUID, endpoint_id: str) -> WebhookEndpoint:
    endpoint = session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == _parse_id(endpoint_id, what="endpoint", code="endpoint_not_found"),
            WebhookEndpoint.tenant_id == tenant_id,
        )
    )
    if endpoint is None:
        raise NotFoundError("no endpoint with this id", code="endpoint_not_found")
    return endpoint


def list_endpoints(session: Session, *, tenant_id: uuid.UUID) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.tenant_id == tenant_id)
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
    )


def delete_endpoint(session: Session, *, tenant_id: uuid.UUID, endpoint_id: str) -> None:
    """Removes the endpoint; what it still had to receive fails (the log stays). Commits."""
    endpoint = get_endpoint(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.status.in_(DELIVERY_ABANDON.source_values),
        )
        .values(
            status=DELIVERY_ABANDON.target_value,
            next_attempt_at=None,
            finished_at=func.now(),
            last_error="the endpoint was deleted",
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id))
    session.commit()
    log_event(log, "webhook.endpoint.deleted", endpoint_id=str(endpoint.id))


def enable_endpoint(
    session: Session, *, tenant_id: uuid.UUID, endpoint_id: str, settings: Settings
) -> WebhookEndpoint:
    """Turns an endpoint disabled by a 410 back on (its URL is checked again). Commits."""
    endpoint = get_endpoint(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    if not endpoint.is_active:
        _check_endpoint_url(endpoint.url, settings=settings)
        endpoint.is_active = True
        endpoint.disabled_at = None
        endpoint.disabled_reason = None
        session.commit()
        log_event(log, "webhook.endpoint.enabled", endpoint_id=str(endpoint.id))
    return endpoint


def get_callback_secret(
    session: Session, *, tenant_id: uuid.UUID, settings: Settings
) -> tuple[str, CallbackSecret]:
    """The tenant's callback signing secret (made on first use). Commits."""
    secret = ensure_callback_secret(session, tenant_id=tenant_id, key=settings.webhook_secrets_key)
    session.commit()
    row = session.get(CallbackSecret, tenant_id)
    assert row is not None
    return secret, row


def rotate_callback_secret(
    session: Session, *, tenant_id: uuid.UUID, settings: Settings
) -> tuple[str, CallbackSecret]:
    """A new callback secret; deliveries from now on (retries included) are signed with it. Commits."""
    secret = new_secret()
    row = session.get(CallbackSecret, tenant_id, with_for_update=True)
    encrypted = encrypt_secret(secret, key=settings.webhook_secrets_key, context=f"callback:{tenant_id}")
    if row is None:
        row = CallbackSecret(tenant_id=tenant_id, secret_encrypted=encrypted, secret_hint=secret_hint(secret))
        session.add(row)
    else:
        row.secret_encrypted = encrypted
        row.secret_hint = secret_hint(secret)
        row.created_at = datetime.now(UTC)
    session.commit()
    log_event(log, "webhook.callback_secret.rotated", tenant_id=str(tenant_id))
    return secret, row


def _attempts_by_delivery(
    session: Session, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    grouped: dict[uuid.UUID, list[WebhookAttempt]] = defaultdict(list)
    if delivery_ids:
        for attempt in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(delivery_ids))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt)
        ):
            grouped[attempt.delivery_id].append(attempt)
    return grouped


def list_deliveries(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    job_id: str | None = None,
    batch_id: str | None = None,
    endpoint_id: str | None = None,
    page: PageRequest,
) -> tuple[list[tuple[WebhookDelivery, list[WebhookAttempt]]], str | None]:
    """Deliveries of one job, batch or endpoint (oldest first), each with its attempts."""
    query = select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant_id)
    if job_id is not None:
        parsed = _parse_id(job_id, what="job", code="job_not_found")
        if session.scalar(select(Job.id).where(Job.id == parsed, Job.tenant_id == tenant_id)) is None:
            raise NotFoundError("no job with this id", code="job_not_found")
        query = query.where(WebhookDelivery.job_id == parsed)
    if batch_id is not None:
        parsed = _parse_id(batch_id, what="batch", code="batch_not_found")
        if session.scalar(select(Batch.id).where(Batch.id == parsed, Batch.tenant_id == tenant_id)) is None:
            raise NotFoundError("no batch with this id", code="batch_not_found")
        query = query.where(WebhookDelivery.batch_id == parsed, WebhookDelivery.job_id.is_(None))
    if endpoint_id is not None:
        endpoint = get_endpoint(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
        query = query.where(WebhookDelivery.endpoint_id == endpoint.id)
    rows, next_cursor = keyset_page(
        session, query, keys=(WebhookDelivery.created_at, WebhookDelivery.id), page=page
    )
    attempts = _attempts_by_delivery(session, [row.id for row in rows])
    return [(row, attempts.get(row.id, [])) for row in rows], next_cursor


def get_delivery(
    session: Session, *, tenant_id: uuid.UUID, delivery_id: str
) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    delivery = session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == _parse_id(delivery_id, what="delivery", code="delivery_not_found"),
            WebhookDelivery.tenant_id == tenant_id,
        )
    )
    if delivery is None:
        raise NotFoundError("no delivery with this id", code="delivery_not_found")
    return delivery, _attempts_by_delivery(session, [delivery.id]).get(delivery.id, [])


def redeliver(
    session: Session, celery: Celery, *, tenant_id: uuid.UUID, delivery_id: str, settings: Settings
) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    """Starts a finished delivery over: a full retry schedule from now, same webhook-id and body
    (receivers deduplicate on the id). Of requests sent together, exactly one is accepted; the
    others are 409. Commits, then sends the message."""
    delivery, _ = get_delivery(session, tenant_id=tenant_id, delivery_id=delivery_id)
    if delivery.destination == "endpoint":
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id) if delivery.endpoint_id else None
        if endpoint is None:
            raise ConflictError("the endpoint of this delivery was deleted", code="endpoint_deleted")
        if not endpoint.is_active:
            raise ConflictError(
                "the endpoint is disabled; enable it first (POST /v1/webhooks/{id}/enable)",
                code="endpoint_disabled",
            )
    now = datetime.now(UTC)
    window = timedelta(seconds=settings.webhook_redeliver_window_s)
    # One conditional UPDATE decides: concurrent requests queue on the row and each re-checks the
    # condition against the row the previous one committed, so only the first matches. A request
    # that does not match locks nothing (a lock held while it answers 409 made the worker taking
    # the accepted request's message skip the row, leaving it for the sweep minutes later).
    started = session.scalar(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery.id,
            WebhookDelivery.status.in_(DELIVERY_REDELIVER.source_values),
            or_(
                WebhookDelivery.redelivery_requested_at.is_(None),
                WebhookDelivery.redelivery_requested_at <= func.now() - window,
            ),
        )
        .values(
            status=DELIVERY_REDELIVER.target_value,
            series_attempts=0,
            next_attempt_at=now,
            finished_at=None,
            claimed_until=None,
            # Marked dispatched in the transaction that makes it due, and the message sent only
            # after that commit: a worker taking the message finds the row due and unlocked.
            dispatched_at=now,
            redelivery_requested_at=func.now(),
        )
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    )
    if started is None:
        session.rollback()
        current, _ = get_delivery(session, tenant_id=tenant_id, delivery_id=delivery_id)
        session.refresh(current)
        if current.status == DeliveryStatus.PENDING.value:
            raise ConflictError(
                "the delivery is still being attempted; wait for it to finish", code="delivery_pending"
            )
        raise ConflictError(
            f"the delivery was redelivered less than {settings.webhook_redeliver_window_s:g} s ago; "
            "that redelivery is the one this request asks for",
            code="delivery_redelivered",
        )
    session.commit()
    log_event(log, "webhook.delivery.redelivery_requested", delivery_id=str(delivery.id))
    send_dispatched(settings, celery, [delivery.id])
    session.expire_all()
    return get_delivery(session, tenant_id=tenant_id, delivery_id=str(delivery.id))
