"""The FastAPI application, built by ``create_app(settings)`` (never at import)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from api.access_log import AccessLogMiddleware
from api.errors import register_error_handlers
from api.events import JobEventHub
from api.guard import BodyGuard
from api.routes import (
    batches,
    deliveries,
    explanations,
    health,
    images,
    jobs,
    monitoring,
    reviews,
    shares,
    uploads,
    webhooks,
)
from api.routes.web import mount_web
from api.schemas.batches import BatchCreate
from api.schemas.jobs import JobCreate
from api.security_headers import SecurityHeadersMiddleware, upload_origins
from core.config import Settings, get_settings
from lifecycle.events import EventChannel

__all__ = ["create_app"]


API_VERSION = "1.0.0"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await app.state.job_events.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Swagger UI (/docs) and ReDoc (/redoc) load their scripts from the fastapi-offline package
    # under /docs-assets, never from a CDN: the docs work on a machine with no network.
    app = FastAPIOffline(
        static_url="/docs-assets",
        lifespan=_lifespan,
        title="DeepfakeStream",
        version=API_VERSION,
        description=(
            "Detects face deepfakes in videos. Submit a video, poll the job, read the verdict and "
            "the per-segment, per-frame and per-track scores. Every /v1 call needs "
            '`Authorization: Bearer <key>`; errors answer `{"error": {"code", "message"}}`.'
        ),
    )
    app.state.settings = settings
    # One subscription to job events per process, for every request that waits on a job.
    app.state.job_events = JobEventHub(EventChannel.from_settings(settings))
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
    app.include_router(reviews.router)
    app.include_router(shares.router)
    mount_web(app)
    # Innermost of the middlewares (added first): the access log below still sees its refusals.
    app.add_middleware(BodyGuard, settings=settings)

    app.add_middleware(AccessLogMiddleware)
    # Outermost of ours: every answer gets them, refusals included (an unexpected error's 500 is
    # answered outside every middleware, by Starlette's own; its handler adds them itself).
    app.add_middleware(SecurityHeadersMiddleware, uploads=upload_origins(settings))

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
