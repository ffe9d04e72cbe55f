"""What operators look at: drift, the resources of workers and queues, and scrape-time metrics.

Drift compares a recent and a reference window of job statistics; resource figures come from the
workers' reports in Redis; Prometheus reads the database and Redis when it scrapes /metrics.
Health checks are ``api.services.health``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.schemas.monitoring import (
    DriftReport,
    DriftThresholdsPublic,
    DriftWindow,
    FeatureDriftPublic,
    ResourceConsumption,
)
from api.services.reviews import agreement_counts
from core.config import Settings
from core.db import get_session_factory
from core.drift import FEATURES, DriftThresholds, FeatureDrift, compare_windows, format_duration
from core.logs import log_event
from core.metrics import gauge_family
from core.models import Job, JobStatistics
from core.queue import Queue
from core.resources import host_usage, process_usage, queue_depths, read_reports
from core.states import JobStatus

__all__ = [
    "ScrapeCollector",
    "drift_report",
    "resource_consumption",
    "thresholds_from",
]

log = logging.getLogger(__name__)

# Newest jobs read per window: enough for tight estimates, bounded for memory and time.
MAX_ROWS_PER_WINDOW = 50_000
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
            ("reviews", self._reviews),
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

    def _reviews(self) -> Iterator[Any]:
        with get_session_factory(self.settings)() as session:
            counts = agreement_counts(session)
        yield gauge_family(
            "deepfakestream_reviewed_jobs",
            "Reviewed jobs of every tenant by the model's verdict and the reviewer's current label "
            "(agreement: fake/fake and real/real; overturned: fake/real and real/fake)",
            ["model_verdict", "reviewer_label"],
            [([verdict, label], count) for (verdict, label), count in sorted(counts.items())],
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
