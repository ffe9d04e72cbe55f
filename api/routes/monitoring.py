"""Operators' routes: drift, Prometheus metrics, health snapshots and resource consumption.

Drift and metrics serve every key (drift within its tenant); health snapshots and resource
consumption are admin-only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import AdminKey, CurrentKey, QueueDep, SessionDep, SettingsDep, StorageDep
from api.errors import error_responses
from api.schemas.monitoring import DriftReport, HealthSnapshot, HealthSnapshotPage, ResourceConsumption
from api.services import health
from api.services import monitoring as service
from core.drift import parse_duration
from core.errors import ForbiddenError, InvalidRequestError
from core.metrics import CONTENT_TYPE_LATEST, render

__all__ = ["router"]

router = APIRouter(tags=["monitoring"])

MAX_WINDOW = timedelta(days=366)


def _duration(text: str | None, *, default_s: float, name: str) -> timedelta:
    if text is None:
        return timedelta(seconds=default_s)
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise InvalidRequestError(f"{name}: {exc}", code="invalid_window") from exc
    if value > MAX_WINDOW:
        raise InvalidRequestError(f"{name} must be at most 366d", code="invalid_window")
    return value


@router.get(
    "/v1/monitoring/drift",
    response_model=DriftReport,
    summary="Drift of incoming videos: a recent window against a reference window",
    description=(
        "Per feature (input statistics: brightness, luma histogram moments, sharpness, face size, "
        "resolution, frame rate, codec; outputs: score, verdict, no_face), the population stability "
        "index and a two-sample test (Kolmogorov–Smirnov, or chi-square for categories) between the "
        "jobs that finished in the last `window` and those of the `reference` window before it. A "
        "feature is flagged when its PSI passes the threshold and the test is significant. Keys "
        "see their own tenant's jobs; admin keys see every tenant's (`scope=all`, their default)."
    ),
    responses=error_responses(401, 403, 422),
)
def get_drift(
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    window: Annotated[
        str | None, Query(max_length=16, description="recent window, e.g. 1h, 24h, 7d (default 24h)")
    ] = None,
    reference: Annotated[
        str | None, Query(max_length=16, description="reference window just before it (default 7d)")
    ] = None,
    scope: Annotated[Literal["tenant", "all"] | None, Query(description="all: every tenant (admin)")] = None,
) -> DriftReport:
    recent = _duration(window, default_s=settings.drift_window_s, name="window")
    before = _duration(reference, default_s=settings.drift_reference_s, name="reference")
    chosen = scope or ("all" if key.is_admin else "tenant")
    if chosen == "all" and not key.is_admin:
        raise ForbiddenError("drift over every tenant needs an admin key", code="admin_required")
    return service.drift_report(
        session,
        tenant_id=None if chosen == "all" else key.tenant_id,
        window=recent,
        reference=before,
        settings=settings,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="The text exposition format; scraped by Prometheus (see infra/prometheus).",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "metrics"}},
)
def metrics(settings: SettingsDep) -> Response:
    return Response(render([service.ScrapeCollector(settings)]), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/healthcheck/",
    response_model=HealthSnapshot,
    summary="Health snapshot (admin); each call is stored",
    description=(
        "Database, broker (with queue depths), storage and workers, each with its latency. `healthy`: "
        "all answer; `degraded`: no worker answers; `unhealthy` (503): the database, the broker or "
        "storage fails."
    ),
    responses=error_responses(401, 403, 503),
)
async def healthcheck(
    key: AdminKey, settings: SettingsDep, storage: StorageDep, celery: QueueDep
) -> JSONResponse:
    api_key_id = key.id
    snapshot = await run_in_threadpool(
        lambda: health.take_health_snapshot(
            settings=settings, storage=storage, celery=celery, api_key_id=api_key_id
        )
    )
    unhealthy = snapshot.status == "unhealthy"
    return JSONResponse(
        snapshot.model_dump(mode="json"),
        status_code=503 if unhealthy else 200,
        headers={"Retry-After": "5"} if unhealthy else None,
    )


@router.get(
    "/healthcheck/history/",
    response_model=HealthSnapshotPage,
    summary="Stored health snapshots, newest first (admin)",
    responses=error_responses(401, 403, 422),
)
def healthcheck_history(
    key: AdminKey,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500, description="how many snapshots")] = 50,
) -> HealthSnapshotPage:
    return HealthSnapshotPage(items=health.list_health_snapshots(session, limit=limit))


@router.get(
    "/system/resource/consumption/",
    response_model=ResourceConsumption,
    summary="CPU, memory and GPU memory per worker process, and queue depths (admin)",
    description=(
        "Each worker process reports its CPU, resident memory and (pool processes on a GPU) torch's "
        "allocated and reserved memory with its device's use, every few seconds; reports older than "
        "three intervals drop out. Queue depths count the messages waiting, per priority step."
    ),
    responses=error_responses(401, 403),
    operation_id="resource_consumption_system_resource_consumption__get",
)
def get_resource_consumption(key: AdminKey, settings: SettingsDep) -> ResourceConsumption:
    return service.resource_consumption(settings=settings)
