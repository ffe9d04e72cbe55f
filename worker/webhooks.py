"""Webhook delivery: the dispatcher of due deliveries, and one attempt of one delivery.

Plain functions tests can call without Celery. Deliveries live in Postgres (an outbox written with
the event), so retries hours apart never sit in the broker: an attempt that fails records when the
next one is due, and the dispatcher (run every few seconds by beat) sends a message then; a
delivery's first message leaves when the transaction that wrote it commits (``lifecycle.outbox``). A
delivery is claimed with a row lock and a claim deadline, so two messages for it never send it
twice at once.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from core.egress.client import post
from core.egress.guard import EgressError
from core.logs import log_context, log_event
from core.metrics import record_webhook_delivery
from core.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from core.webhooks import (
    SecretError,
    decrypt_secret,
    ensure_callback_secret,
    message_id,
    parse_retry_after,
    retry_delay_s,
    serialize_payload,
    sign,
)
from lifecycle.deliveries import DeliveryStatus
from lifecycle.outbox import record_dispatcher_heartbeat, send_dispatched
from lifecycle.transitions import (
    DELIVERY_ABANDON,
    DELIVERY_FAIL,
    DELIVERY_RETRY,
    DELIVERY_SUCCEED,
    move,
)
from worker.runtime import WorkerContext

__all__ = ["AttemptOutcome", "deliver", "dispatch_due"]

log = logging.getLogger(__name__)

USER_AGENT = "DeepfakeStream-Webhooks/1"
_DISPATCH_BATCH = 500
# Messages may be handled a moment before the time the row says (clocks, rounding).
_EARLY_SLACK_S = 1.0
# An attempt's result, as the move of its delivery.
_SETTLED = {"succeeded": DELIVERY_SUCCEED, "failed": DELIVERY_FAIL, "retrying": DELIVERY_RETRY}


def _now() -> datetime:
    return datetime.now(UTC)


def dispatch_due(ctx: WorkerContext) -> int:
    """Sends one message per delivery that is due and has no message on its way. Returns how many.

    The rows are marked dispatched and committed before any message leaves: a worker taking a
    message finds its delivery unlocked and due. The run's heartbeat tells the health checks a
    dispatcher is alive."""
    settings = ctx.settings
    now = _now()
    lost_before = now - timedelta(seconds=settings.webhook_redispatch_after_s)
    with ctx.session() as session, session.begin():
        due = list(
            session.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING.value,
                    WebhookDelivery.next_attempt_at <= now,
                    or_(
                        WebhookDelivery.dispatched_at.is_(None),
                        WebhookDelivery.dispatched_at < WebhookDelivery.next_attempt_at,
                        WebhookDelivery.dispatched_at < lost_before,
                    ),
                    or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(_DISPATCH_BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if due:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(due))
                .values(dispatched_at=func.now())
                .execution_options(synchronize_session=False)
            )
    sent = send_dispatched(settings, ctx.celery, due) if due else 0
    record_dispatcher_heartbeat(settings)
    return sent


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt ended as: ``succeeded``, ``retrying`` or ``failed`` (or ``skipped``)."""

    result: str
    status_code: int | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class _Claimed:
    delivery_id: uuid.UUID
    attempt: int
    series_attempt: int
    url: str
    event_type: str
    body: bytes
    secret: str
    endpoint_id: uuid.UUID | None


def _finish_without_attempt(session: Session, delivery: WebhookDelivery, reason: str) -> AttemptOutcome:
    move(delivery, DELIVERY_ABANDON)
    delivery.next_attempt_at = None
    delivery.claimed_until = None
    delivery.last_error = reason[:500]
    delivery.finished_at = _now()
    log_event(log, "webhook.delivery.dropped", level=logging.WARNING, reason=reason)
    return AttemptOutcome("failed")


def _claim(ctx: WorkerContext, session: Session, delivery_id: uuid.UUID) -> _Claimed | AttemptOutcome:
    settings = ctx.settings
    now = _now()
    delivery = session.scalar(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
            WebhookDelivery.next_attempt_at <= now + timedelta(seconds=_EARLY_SLACK_S),
            or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
        )
        .with_for_update(skip_locked=True)
    )
    if delivery is None:
        return AttemptOutcome("skipped")
    try:
        if delivery.destination == "endpoint":
            endpoint = (
                session.get(WebhookEndpoint, delivery.endpoint_id)
                if delivery.endpoint_id is not None
                else None
            )
            if endpoint is None or not endpoint.is_active:
                return _finish_without_attempt(session, delivery, "the endpoint is disabled")
            secret = decrypt_secret(
                endpoint.secret_encrypted,
                key=settings.webhook_secrets_key,
                context=f"endpoint:{endpoint.id}",
            )
        else:
            secret = ensure_callback_secret(
                session, tenant_id=delivery.tenant_id, key=settings.webhook_secrets_key
            )
    except SecretError as exc:
        # A wrong WEBHOOK_SECRETS_KEY on this worker: leave the delivery for a worker that has the
        # right key (or this one, once fixed) instead of failing it.
        log_event(log, "webhook.delivery.unsigned", level=logging.ERROR, detail=str(exc))
        return AttemptOutcome("skipped")
    # Longer than the attempt can last (WEBHOOK_TIMEOUT_S caps it on the wall clock): no second
    # attempt of this delivery can start while this one runs.
    claim_s = settings.webhook_claim_s
    delivery.attempts += 1
    delivery.series_attempts += 1
    delivery.claimed_until = now + timedelta(seconds=claim_s)
    return _Claimed(
        delivery_id=delivery.id,
        attempt=delivery.attempts,
        series_attempt=delivery.series_attempts,
        url=delivery.url,
        event_type=delivery.event_type,
        body=serialize_payload(delivery.payload),
        secret=secret,
        endpoint_id=delivery.endpoint_id,
    )


def deliver(ctx: WorkerContext, *, delivery_id: uuid.UUID) -> AttemptOutcome:
    """One attempt of one delivery, recorded whatever its outcome."""
    with log_context(delivery_id=str(delivery_id), task="deliver"):
        with ctx.session() as session, session.begin():
            claimed = _claim(ctx, session, delivery_id)
        if isinstance(claimed, AttemptOutcome):
            if claimed.result == "skipped":
                log_event(log, "webhook.delivery.skipped", reason="not due, claimed or finished")
            return claimed
        return _attempt(ctx, claimed)


def _attempt(ctx: WorkerContext, claimed: _Claimed) -> AttemptOutcome:
    settings = ctx.settings
    started_at = _now()
    headers = {
        **sign(
            secret=claimed.secret,
            msg_id=message_id(claimed.delivery_id),
            timestamp=started_at,
            body=claimed.body,
        ),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    status_code: int | None = None
    retry_after: float | None = None
    remote_address: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable = True
    clock = time.perf_counter()
    try:
        response = post(
            claimed.url,
            body=claimed.body,
            headers=headers,
            allow_private=settings.webhook_allow_private,
            timeout_s=settings.webhook_timeout_s,
            connect_timeout_s=settings.webhook_connect_timeout_s,
            ca_bundle=settings.outbound_ca_bundle,
        )
        status_code = response.status_code
        remote_address = response.remote_address
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if 300 <= status_code < 400:
            error_code = "redirect_not_followed"
            error_message = f"the receiver redirected ({status_code}); redirects are not followed"
        elif not 200 <= status_code < 300:
            error_code = "http_error"
            error_message = f"the receiver answered {status_code}"
    except EgressError as exc:
        error_code, error_message, retryable = exc.code, exc.message, exc.retryable
    duration_ms = round((time.perf_counter() - clock) * 1000, 1)

    now = _now()
    next_attempt_at: datetime | None = None
    disable_endpoint = False
    if status_code is not None and 200 <= status_code < 300:
        result = "succeeded"
    elif status_code == 410:
        result, disable_endpoint = "failed", claimed.endpoint_id is not None
    elif not retryable:
        result = "failed"
    else:
        delay = retry_delay_s(
            failed_attempts=claimed.series_attempt,
            schedule=settings.webhook_retry_schedule_s,
            jitter=settings.webhook_retry_jitter,
        )
        if delay is not None and retry_after is not None:
            delay = max(delay, min(retry_after, settings.webhook_retry_after_max_s))
        if delay is None:
            result = "failed"
        else:
            result, next_attempt_at = "retrying", now + timedelta(seconds=delay)

    with ctx.session() as session, session.begin():
        session.add(
            WebhookAttempt(
                delivery_id=claimed.delivery_id,
                attempt=claimed.attempt,
                started_at=started_at,
                duration_ms=duration_ms,
                remote_address=remote_address,
                status_code=status_code,
                error_code=error_code,
                error_message=(error_message or None) and error_message[:500],
                next_attempt_at=next_attempt_at,
            )
        )
        delivery = session.get(WebhookDelivery, claimed.delivery_id, with_for_update=True)
        if delivery is not None:
            move(delivery, _SETTLED[result])
            delivery.next_attempt_at = next_attempt_at
            delivery.claimed_until = None
            delivery.last_status_code = status_code
            delivery.last_error = (error_message or None) and error_message[:500]
            if result != "retrying":
                delivery.finished_at = now
        if disable_endpoint:
            _disable_endpoint(session, endpoint_id=claimed.endpoint_id)
    log_event(
        log,
        f"webhook.delivery.{result}",
        level=logging.INFO if result == "succeeded" else logging.WARNING,
        event_type=claimed.event_type,
        host=urlsplit(claimed.url).hostname,
        attempt=claimed.attempt,
        status=status_code,
        code=error_code,
        duration_ms=duration_ms,
        next_attempt_at=next_attempt_at.isoformat() if next_attempt_at else None,
        endpoint_disabled=disable_endpoint or None,
    )
    record_webhook_delivery(result)
    return AttemptOutcome(result, status_code=status_code, next_attempt_at=next_attempt_at)


def _disable_endpoint(session: Session, *, endpoint_id: uuid.UUID | None) -> None:
    """A 410 Gone means the receiver is gone for good: stop sending to it, and fail what waits."""
    if endpoint_id is None:
        return
    endpoint = session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
    if endpoint is None or not endpoint.is_active:
        return
    endpoint.is_active = False
    endpoint.disabled_at = _now()
    endpoint.disabled_reason = "the receiver answered 410 Gone"
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status.in_(DELIVERY_ABANDON.source_values),
        )
        .values(
            status=DELIVERY_ABANDON.target_value,
            next_attempt_at=None,
            finished_at=func.now(),
            last_error="the endpoint was disabled after a 410 Gone",
        )
        .execution_options(synchronize_session=False)
    )
    log_event(log, "webhook.endpoint.disabled", level=logging.WARNING, endpoint_id=str(endpoint_id))
