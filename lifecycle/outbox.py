"""Webhook messages leave once the rows that make them due are committed, never before.

A delivery row written in a transaction (a job ended, a batch completed) is marked dispatched in
that transaction and its message sent right after the commit (``core.db.after_commit``): no beat
process is needed for a webhook to leave. The periodic sweep
(``worker.webhooks.dispatch_due``) is the safety net: it sends what a crash or a broker outage kept
back, and records a heartbeat in Redis that ``/readyz`` and ``/healthcheck/`` read, so a deployment
without a dispatcher is reported instead of failing silently.

A message is only ever sent for a committed row: a worker that takes it finds the delivery due
and unlocked, instead of skipping it and leaving it to wait for the sweep's redispatch.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from celery import Celery
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.config import Settings
from core.db import after_commit, get_session_factory, queued_after_commit
from core.logs import log_event
from core.models import WebhookDelivery
from core.queue import enqueue_webhook, get_celery
from core.redis import broker_key, redis_client

__all__ = [
    "DISPATCHER_HEARTBEAT_KEY",
    "dispatcher_health",
    "record_dispatcher_heartbeat",
    "send_after_commit",
    "send_dispatched",
]

log = logging.getLogger(__name__)

DISPATCHER_HEARTBEAT_KEY = "webhooks:dispatcher:heartbeat"
SEND_ON_COMMIT_MAX = 500
# The sweep runs every WEBHOOK_DISPATCH_INTERVAL_S; missing this many runs (or a minute) is stale.
_STALE_RUNS = 5
_STALE_MIN_S = 60.0


def send_after_commit(session: Session, delivery_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Arranges for the deliveries' messages to be sent once ``session`` commits, up to
    ``SEND_ON_COMMIT_MAX`` per transaction (a batch canceled with thousands of callbacks does not
    hold its request while they leave: the sweep sends the rest). Returns the ids that will be
    sent, for the caller to mark dispatched in the same transaction; none when the session does
    not know its settings (``core.db.get_session_factory``'s sessions do)."""
    if not delivery_ids or "settings" not in session.info:
        return []
    queued = queued_after_commit(session, _send_committed)
    taken = list(delivery_ids[: max(0, SEND_ON_COMMIT_MAX - queued)])
    if taken:
        after_commit(session, _send_committed, *taken)
    return taken


def _send_committed(session: Session, pending: list[uuid.UUID]) -> None:
    settings: Settings = session.info["settings"]
    try:
        send_dispatched(settings, get_celery(settings), pending)
    except Exception as exc:  # never fail the caller after its commit; the sweep sends them
        log_event(
            log, "webhook.dispatch.failed", level=logging.WARNING, error=f"{type(exc).__name__}: {exc}"[:300]
        )


def send_dispatched(settings: Settings, celery: Celery, delivery_ids: Sequence[uuid.UUID]) -> int:
    """Sends one message per delivery whose ``dispatched_at`` a committed transaction set. Those
    the broker refused get ``dispatched_at`` cleared, so the next sweep sends them. Returns how
    many were sent."""
    sent = 0
    for delivery_id in delivery_ids:
        try:
            enqueue_webhook(celery, delivery_id=delivery_id, timeout_s=settings.enqueue_timeout_s)
        except Exception as exc:  # kombu raises many types; the sweep sends the rest
            log_event(
                log,
                "webhook.dispatch.failed",
                level=logging.WARNING,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            break
        sent += 1
    unsent = list(delivery_ids[sent:])
    if unsent:
        with get_session_factory(settings)() as session, session.begin():
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(unsent), WebhookDelivery.claimed_until.is_(None))
                .values(dispatched_at=None)
                .execution_options(synchronize_session=False)
            )
    return sent


def record_dispatcher_heartbeat(settings: Settings) -> None:
    """The sweep ran now (best effort: a Redis hiccup must not stop the sweep)."""
    client = redis_client(settings)
    try:
        client.set(broker_key(settings, DISPATCHER_HEARTBEAT_KEY), f"{time.time():.3f}", ex=86400)
    except Exception as exc:  # the heartbeat is a report, not part of the work
        log_event(log, "webhook.dispatch.heartbeat_failed", level=logging.WARNING, error=str(exc)[:300])
    finally:
        client.close()


def dispatcher_health(settings: Settings) -> dict[str, Any]:
    """The sweep's last run; raises (a finding for the health checks) when none ran lately."""
    stale_after_s = max(_STALE_RUNS * settings.webhook_dispatch_interval_s, _STALE_MIN_S)
    client = redis_client(settings)
    try:
        raw = client.get(broker_key(settings, DISPATCHER_HEARTBEAT_KEY))
    finally:
        client.close()
    if raw is None:
        raise RuntimeError(
            "no webhook dispatcher has run: start one worker with --beat (webhooks are sent when "
            "jobs end, but retries and anything held back wait for it)"
        )
    age_s = max(0.0, time.time() - float(raw))
    if age_s > stale_after_s:
        raise RuntimeError(
            f"the webhook dispatcher last ran {age_s:.0f} s ago (expected every "
            f"{settings.webhook_dispatch_interval_s:g} s): is the worker running --beat alive?"
        )
    return {"last_run_s_ago": round(age_s, 1)}
