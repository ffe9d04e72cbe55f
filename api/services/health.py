"""Dependency checks: /readyz asks them on every probe, and the operators' health snapshots store them.

Each check is timed and never raises: a failing dependency is a finding, not an error.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas.monitoring import HealthSnapshot
from core.config import Settings
from core.db import check_database, get_session_factory
from core.logs import log_event
from core.models import HealthCheck
from core.queue import Queue
from core.redis import ping_broker
from core.resources import queue_depths
from core.storage import ObjectStore
from lifecycle.outbox import dispatcher_health

__all__ = ["Readiness", "list_health_snapshots", "readiness", "take_health_snapshot"]

log = logging.getLogger(__name__)

# A readiness probe must answer fast; a snapshot an operator asked for may wait a little longer.
_READY_WORKER_PING_S = 0.5
_SNAPSHOT_WORKER_PING_S = 1.0
_CORE = ("database", "broker", "storage")
# Failing, these leave the API able to take jobs, but jobs (workers) or webhook retries and
# anything held back (the dispatcher, run by beat) wait: degraded, with the reason.
_OPTIONAL = ("workers", "webhook_dispatcher")


def _timed(check: Callable[[], Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # any failure of a dependency is a finding, not an error
        return {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}"[:300],
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }
    result: dict[str, Any] = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    if isinstance(detail, dict):
        result.update(detail)
    return result


def _broker_with_queues(settings: Settings) -> dict[str, Any]:
    ping_broker(settings)
    return {"queues": {name: depth["waiting"] for name, depth in queue_depths(settings, list(Queue)).items()}}


def _ping_workers(celery: Celery, *, timeout_s: float, none_answered: str) -> dict[str, Any]:
    replies = celery.control.ping(timeout=timeout_s) or []
    names = sorted(name for reply in replies for name in reply)
    if not names:
        raise RuntimeError(none_answered)
    return {"count": len(names), "names": names}


def _check_all(
    settings: Settings, storage: ObjectStore, *, broker: Callable[[], Any], workers: Callable[[], Any]
) -> tuple[dict[str, Any], bool]:
    """Every dependency's check, and whether the core ones (database, broker, storage) all pass.
    Workers are not asked while the broker is down: none could answer."""
    checks: dict[str, Any] = {
        "database": _timed(lambda: check_database(settings)),
        "broker": _timed(broker),
        "storage": _timed(storage.check),
    }
    checks["workers"] = (
        _timed(workers) if checks["broker"]["ok"] else {"ok": False, "error": "broker unreachable"}
    )
    checks["webhook_dispatcher"] = (
        _timed(lambda: dispatcher_health(settings))
        if checks["broker"]["ok"]
        else {"ok": False, "error": "broker unreachable"}
    )
    return checks, all(checks[name]["ok"] for name in _CORE)


def _degraded_reasons(checks: dict[str, Any]) -> list[str]:
    """Why a service that can take jobs is not fully healthy: jobs or webhooks would wait."""
    return [f"{name}: {checks[name].get('error', 'failing')}" for name in _OPTIONAL if not checks[name]["ok"]]


@dataclass(frozen=True)
class Readiness:
    """/readyz's answer: ``ready`` when the database, the broker and storage can be used."""

    ready: bool
    body: dict[str, Any] = field(default_factory=dict)


def readiness(*, settings: Settings, storage: ObjectStore, celery: Celery) -> Readiness:
    """Checks the dependencies now. Workers and the webhook dispatcher are reported (``degraded``
    with ``reasons``) but do not make the API unready: jobs wait in the queue until a worker
    takes them."""
    checks, ready = _check_all(
        settings,
        storage,
        broker=lambda: ping_broker(settings),
        workers=lambda: _ping_workers(
            celery, timeout_s=_READY_WORKER_PING_S, none_answered="no worker answered"
        ),
    )
    reasons = _degraded_reasons(checks)
    status = "ready" if ready and not reasons else ("degraded" if ready else "unavailable")
    body: dict[str, Any] = {"status": status, "checks": checks}
    if ready and reasons:
        body["reasons"] = reasons
    if not ready:
        failing = ", ".join(name for name in _CORE if not checks[name]["ok"])
        body["error"] = {"code": "not_ready", "message": f"unavailable: {failing}"}
    return Readiness(ready=ready, body=body)


def take_health_snapshot(
    *, settings: Settings, storage: ObjectStore, celery: Celery, api_key_id: uuid.UUID | None
) -> HealthSnapshot:
    """Checks every dependency now and stores the result. ``unhealthy``: the database, the broker
    or storage fails (the API cannot take jobs); ``degraded``: no worker answers (jobs wait) or no
    webhook dispatcher ran lately (retries wait); the failing check's ``error`` says why."""
    started = time.perf_counter()
    checked_at = datetime.now(UTC)
    checks, core_ok = _check_all(
        settings,
        storage,
        broker=lambda: _broker_with_queues(settings),
        workers=lambda: _ping_workers(
            celery, timeout_s=_SNAPSHOT_WORKER_PING_S, none_answered="no worker answered a ping"
        ),
    )
    status: Literal["healthy", "degraded", "unhealthy"] = (
        "healthy" if core_ok and not _degraded_reasons(checks) else ("degraded" if core_ok else "unhealthy")
    )
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    snapshot_id: int | None = None
    if checks["database"]["ok"]:
        try:
            with get_session_factory(settings)() as session:
                record = HealthCheck(
                    checked_at=checked_at,
                    status=status,
                    duration_ms=duration_ms,
                    checks=checks,
                    api_key_id=api_key_id,
                )
                session.add(record)
                session.commit()
                snapshot_id = record.id
        except Exception as exc:  # the snapshot is still worth returning
            checks["record"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    log_event(
        log, "health.snapshot.taken", status=status, stored=snapshot_id is not None, duration_ms=duration_ms
    )
    return HealthSnapshot(
        id=snapshot_id, checked_at=checked_at, status=status, duration_ms=duration_ms, checks=checks
    )


def list_health_snapshots(session: Session, *, limit: int) -> list[HealthSnapshot]:
    rows = session.scalars(select(HealthCheck).order_by(HealthCheck.checked_at.desc()).limit(limit))
    return [
        HealthSnapshot.model_validate(
            {
                "id": row.id,
                "checked_at": row.checked_at,
                "status": row.status,
                "duration_ms": row.duration_ms,
                "checks": row.checks,
            }
        )
        for row in rows
    ]
