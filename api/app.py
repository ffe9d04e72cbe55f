"""The FastAPI application, built by ``create_app(settings)`` (never at import)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi

from api.errors import register_error_handlers
from api.routes import batches, deliveries, explanations, health, images, jobs, monitoring, uploads, webhooks
from api.routes.web import mount_web
from api.schemas.batches import BatchCreate
from api.schemas.jobs import JobCreate
from core.config import Settings, get_settings
from core.logs import log_event
from core.metrics import UNMATCHED_ROUTE, observe_http_request

__all__ = ["create_app"]

log = logging.getLogger("api.access")

API_VERSION = "1.0.0"
# Probes and scrapes arrive every few seconds; their access lines would drown the rest.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="DeepfakeStream",
        version=API_VERSION,
        description=(
            "Detects face deepfakes in videos. Submit a video, poll the job, read the verdict and "
            "the per-segment, per-frame and per-track scores. Every /v1 call needs "
            '`Authorization: Bearer <key>`; errors answer `{"error": {"code", "message"}}`.'
        ),
    )
    app.state.settings = settings
    register_error_handlers(app)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(uploads.router)
    app.include_router(batches.router)
    app.include_router(webhooks.router)
    app.include_router(deliveries.router)
    app.include_router(explanations.router)
    app.include_router(images.router)
    app.include_router(monitoring.router)
    mount_web(app)

    @app.middleware("http")
    async def _access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        elapsed = time.perf_counter() - started
        route = request.scope.get("route")
        # The route template, never the raw path, labels the histogram: bounded series.
        observe_http_request(
            method=request.method,
            route=getattr(route, "path", UNMATCHED_ROUTE),
            status=response.status_code,
            seconds=elapsed,
        )
        path_params = request.scope.get("path_params") or {}
        ids = {name: path_params[name] for name in ("job_id", "batch_id") if path_params.get(name)}
        log_event(
            log,
            "api.request.completed",
            level=logging.DEBUG if request.url.path in _QUIET_PATHS else logging.INFO,
            method=request.method,
            route=getattr(route, "path", request.url.path),
            status=response.status_code,
            duration_ms=round(elapsed * 1000, 1),
            **ids,
        )
        return response

    def openapi() -> dict[str, Any]:
        # POST /v1/jobs reads its body itself (multipart or JSON), so FastAPI does not see the
        # JSON model: add it to the document the route's requestBody points at.
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            job_create = JobCreate.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(job_create.pop("$defs", {}))
            components["JobCreate"] = job_create
            batch_create = BatchCreate.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(batch_create.pop("$defs", {}))
            components["BatchCreate"] = batch_create
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
