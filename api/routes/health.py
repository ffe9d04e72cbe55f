"""Liveness and readiness: /healthz answers while the process runs; /readyz checks what it needs."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import QueueDep, SettingsDep, StorageDep
from api.services import health as service

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database, broker and storage reachable; workers and the webhook dispatcher listed",
    description=(
        "503 when the database, the broker or storage cannot be used. Workers and the webhook "
        "dispatcher are reported (`degraded`, with `reasons`) but do not make the API unready: "
        "jobs wait in the queue until a worker takes them, webhook retries until beat runs."
    ),
)
async def readyz(settings: SettingsDep, storage: StorageDep, celery: QueueDep) -> JSONResponse:
    answer = await run_in_threadpool(
        lambda: service.readiness(settings=settings, storage=storage, celery=celery)
    )
    if answer.ready:
        return JSONResponse(answer.body, status_code=200)
    return JSONResponse(answer.body, status_code=503, headers={"Retry-After": "5"})
