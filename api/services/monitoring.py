"""What operators look at: drift between a recent and a reference window, health snapshots (each
one stored), the resources of every worker and the queues, and the values Prometheus reads from
the database and Redis when it scrapes /metrics."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psutil
from celery import Celery
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.monitoring_schemas import (
    DriftReport,
    DriftThresholdsPublic,
    DriftWindow,
    FeatureDriftPublic,
    HealthSnapshot,
    ResourceConsumption,
)
from core.config import Settings
from core.db import check_database, get_session_factory
from core.drift import FEATURES, DriftThresholds, FeatureDrift, compare_windows, format_duration
from core.logs import log_event
from core.metrics import gauge_family
from core.models import HealthCheck, Job, JobStatistics
from core.queue import Queue
from core.resources import host_usage, process_usage, queue_depths, read_reports
from core.states import JobStatus
from core.storage import ObjectStore

__all__ = [
    "ScrapeCollector",
    "drift_report",
    "list_health_snapshots",
    "resource_consumption",
    "take_health_snapshot",
    "thresholds_from",
]

log = logging.getLogger(__name__)

# Newest jobs read per window: enough for tight estimates, bounded for memory and time.
MAX_ROWS_PER_WINDOW = 50_000
_WORKER_PING_TIMEOUT_S = 1.0
_FEATURE_COLUMNS = [getattr(JobStatistics, f.name) for f in FEATURES]


def thresholds_from(settings: Settings) -> DriftThresholds:
    return DriftThresholds(
        psi=settings.drift_psi_threshold,
        p_value=settings.drift_p_value,
        min_samples=settings.drift_min_samples,
    )


# --- drift ---------------------------------------------------------------------------------------


def _window_rows(
    session: Session, *, tenant_id: uuid.UUID | None, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    query = select(*_FEATURE_COLUMNS).where(
        JobStatistics.finished_at >= start, JobStatistics.finished_at < end
    )
    if tenant_id is not None:
        query = query.where(JobStatistics.tenant_id == tenant_id)
    query = query.order_by(JobStatistics.finished_at.desc()).limit(MAX_ROWS_PER_WINDOW)
    return [dict(row._mapping) for row in session.execute(query)]


def _compare(
    session: Session,
    *,
    tenant_id: uuid.UUID | None,
    window: timedelta,
    reference: timedelta,
    thresholds: DriftThresholds,
    now: datetime,
) -> tuple[list[FeatureDrift], DriftWindow, DriftWindow]:
    recent_start = now - window
    reference_start = recent_start - reference
    recent_rows = _window_rows(session, tenant_id=tenant_id, start=recent_start, end=now)
    reference_rows = _window_rows(session, tenant_id=tenant_id, start=reference_start, end=recent_start)
    results = compare_windows(reference_rows, recent_rows, thresholds=thresholds)
    return (
        results,
        DriftWindow(start=recent_start, end=now, jobs=len(recent_rows)),
        DriftWindow(start=reference_start, end=recent_start, jobs=len(reference_rows)),
    )


def drift_report(
    session: Session,
    *,
    tenant_id: uuid.UUID | None,
    window: timedelta,
    reference: timedelta,
    settings: Settings,
    now: datetime | None = None,
) -> DriftReport:
    """Every feature of the jobs that finished in the last ``window`` against those of the
    ``reference`` before it; ``tenant_id`` None compares every tenant's jobs together."""
    thresholds = thresholds_from(settings)
    results, recent, reference_window = _compare(
        session,
        tenant_id=tenant_id,
        window=window,
        reference=reference,
        thresholds=thresholds,
        now=now or datetime.now(UTC),
    )
    return DriftReport(
        scope="all" if tenant_id is None else "tenant",
        window=format_duration(window),
        reference_window=format_duration(reference),
        recent=recent,
        reference=reference_window,
        thresholds=DriftThresholdsPublic(
            psi=thresholds.psi, p_value=thresholds.p_value, min_samples=thresholds.min_samples
        ),
        drifted=[r.feature for r in results if r.flagged],
        features=[FeatureDriftPublic.model_validate(r.to_dict()) for r in results],
    )


# --- health --------------------------------------------------------------------------------------


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


def _broker_check(settings: Settings) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return {"queues": {name: depth["waiting"] for name, depth in queue_depths(settings, list(Queue)).items()}}


def _workers_check(celery: Celery) -> dict[str, Any]:
    replies = celery.control.ping(timeout=_WORKER_PING_TIMEOUT_S) or []
    names = sorted(name for reply in replies for name in reply)
    if not names:
        raise RuntimeError("no worker answered a ping")
    return {"count": len(names), "names": names}


def take_health_snapshot(
    *, settings: Settings, storage: ObjectStore, celery: Celery, api_key_id: uuid.UUID | None
) -> HealthSnapshot:
    """Checks every dependency now and stores the result. ``unhealthy``: the database, the broker
    or storage fails (the API cannot take jobs); ``degraded``: no worker answers (jobs wait)."""
    started = time.perf_counter()
    checked_at = datetime.now(UTC)
    checks: dict[str, Any] = {
        "database": _timed(lambda: check_database(settings)),
        "broker": _timed(lambda: _broker_check(settings)),
        "storage": _timed(storage.check),
    }
    checks["workers"] = (
        _timed(lambda: _workers_check(celery))
        if checks["broker"]["ok"]
        else {"ok": False, "error": "broker unreachable"}
    )
    core_ok = all(checks[name]["ok"] for name in ("database", "broker", "storage"))
    status: Literal["healthy", "degraded", "unhealthy"] = (
        "healthy" if core_ok and checks["workers"]["ok"] else ("degraded" if core_ok else "unhealthy")
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


# --- resources -----------------------------------------------------------------------------------

_api_process: psutil.Process | None = None


def _this_process() -> psutil.Process:
    global _api_process
    if _api_process is None:
        _api_process = psutil.Process()
        _api_process.cpu_percent(interval=None)
    return _api_process


def resource_consumption(*, settings: Settings) -> ResourceConsumption:
    """This API process, every worker process that reported recently, and the queues."""
    errors: dict[str, str] = {}
    workers: list[dict[str, Any]] = []
    queues: dict[str, Any] = {}
    try:
        workers = read_reports(settings)
    except Exception as exc:  # Redis down: say so, still report the rest
        errors["workers"] = f"{type(exc).__name__}: {exc}"[:300]
    try:
        queues = queue_depths(settings, list(Queue))
    except Exception as exc:  # the same outage, seen from the queues
        errors["queues"] = f"{type(exc).__name__}: {exc}"[:300]
    return ResourceConsumption(
        collected_at=datetime.now(UTC),
        api={"process": process_usage(_this_process()), "host": host_usage()},
        workers=workers,
        queues=queues,
        errors=errors,
    )


# --- scrape-time metrics -------------------------------------------------------------------------


class _DriftCache:
    """Drift for the gauges, recomputed at most every ``drift_refresh_s``: a scrape every few
    seconds must not re-read two windows of jobs each time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, list[FeatureDrift], int, int]] = {}

    def get(self, settings: Settings) -> tuple[list[FeatureDrift], int, int]:
        """Feature results, jobs in the reference window, jobs in the recent window."""
        with self._lock:
            cached = self._values.get(settings.database_url)
            if cached is not None and time.monotonic() - cached[0] < settings.drift_refresh_s:
                return cached[1], cached[2], cached[3]
            with get_session_factory(settings)() as session:
                results, recent, reference = _compare(
                    session,
                    tenant_id=None,
                    window=timedelta(seconds=settings.drift_window_s),
                    reference=timedelta(seconds=settings.drift_reference_s),
                    thresholds=thresholds_from(settings),
                    now=datetime.now(UTC),
                )
            self._values[settings.database_url] = (time.monotonic(), results, reference.jobs, recent.jobs)
            return results, reference.jobs, recent.jobs


_drift_cache = _DriftCache()


class ScrapeCollector:
    """Values Prometheus reads at scrape time: jobs by state, queue depth, live workers and drift
    (all tenants, the configured windows). A source that cannot be read is reported by
    ``deepfakestream_scrape_source_up`` instead of failing the scrape."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def describe(self) -> list[Any]:
        return []  # families are known only once read; the registry must not call collect() early

    def collect(self) -> Iterator[Any]:
        up: list[tuple[list[str], float]] = []
        for source, read in (
            ("database", self._jobs),
            ("broker", self._queues),
            ("workers", self._workers),
            ("drift", self._drift),
        ):
            try:
                families = list(read())
            except Exception as exc:  # one broken source must not hide the others
                log_event(
                    log,
                    "metrics.scrape.source_failed",
                    level=logging.WARNING,
                    source=source,
                    error=str(exc)[:200],
                )
                up.append(([source], 0.0))
                continue
            up.append(([source], 1.0))
            yield from families
        yield gauge_family(
            "deepfakestream_scrape_source_up",
            "1 when the source of scrape-time values could be read",
            ["source"],
            up,
        )

    def _jobs(self) -> Iterator[Any]:
        with get_session_factory(self.settings)() as session:
            counts = dict(
                (status, count)
                for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status))
            )
        yield gauge_family(
            "deepfakestream_jobs",
            "Jobs by state",
            ["state"],
            [([state.value], counts.get(state.value, 0)) for state in JobStatus],
        )

    def _queues(self) -> Iterator[Any]:
        depths = queue_depths(self.settings, list(Queue))
        yield gauge_family(
            "deepfakestream_queue_depth",
            "Messages waiting in each queue",
            ["queue"],
            [([name], depth["waiting"]) for name, depth in depths.items()],
        )

    def _workers(self) -> Iterator[Any]:
        reports = read_reports(self.settings)
        yield gauge_family(
            "deepfakestream_worker_processes",
            "Worker processes that reported their resources recently, by role",
            ["role"],
            [([role], sum(1 for r in reports if r.get("role") == role)) for role in ("main", "pool")],
        )

    def _drift(self) -> Iterator[Any]:
        results, reference, recent = _drift_cache.get(self.settings)
        measured = [r for r in results if r.psi is not None]
        yield gauge_family(
            "deepfakestream_drift_psi",
            "Population stability index of each feature, recent window against the reference window",
            ["feature"],
            [([r.feature], r.psi or 0.0) for r in measured],
        )
        yield gauge_family(
            "deepfakestream_drift_p_value",
            "p-value of the two-sample test of each feature (KS for numbers, chi-square for categories)",
            ["feature"],
            [([r.feature], r.p_value if r.p_value is not None else 1.0) for r in measured],
        )
        yield gauge_family(
            "deepfakestream_drift_flagged",
            "1 when the feature is flagged as drifting",
            ["feature"],
            [([r.feature], 1.0 if r.flagged else 0.0) for r in results],
        )
        yield gauge_family(
            "deepfakestream_drift_window_jobs",
            "Finished jobs with statistics in each drift window",
            ["window"],
            [(["reference"], reference), (["recent"], recent)],
        )
