"""Liveness and readiness: /healthz answers while the process runs; /readyz checks what it needs."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import QueueDep, SettingsDep, StorageDep
from core.config import Settings
from core.db import check_database

__all__ = ["router"]

router = APIRouter(tags=["health"])

_WORKER_PING_TIMEOUT_S = 0.5


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # any failure of a dependency means not ready
        return {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}"[:300],
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }
    result: dict[str, Any] = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    if isinstance(detail, dict):
        result.update(detail)
    return result


def _check_broker(settings: Settings) -> None:
    import redis

    client = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


@router.get(
    "/readyz",
    summary="Database, broker and storage reachable; workers listed",
    description=(
        "503 when the database, the broker or storage cannot be used. Workers are reported but do "
        "not make the API unready: jobs wait in the queue until a worker takes them."
    ),
)
async def readyz(settings: SettingsDep, storage: StorageDep, celery: QueueDep) -> JSONResponse:
    def workers() -> dict[str, Any]:
        replies = celery.control.ping(timeout=_WORKER_PING_TIMEOUT_S) or []
        names = sorted(name for reply in replies for name in reply)
        if not names:
            raise RuntimeError("no worker answered")
        return {"count": len(names), "names": names}

    checks = {
        "database": await run_in_threadpool(_timed, lambda: check_database(settings)),
        "broker": await run_in_threadpool(_timed, lambda: _check_broker(settings)),
        "storage": await run_in_threadpool(_timed, storage.check),
    }
    checks["workers"] = (
        await run_in_threadpool(_timed, workers)
        if checks["broker"]["ok"]
        else {"ok": False, "error": "broker unreachable"}
    )
    ready = all(checks[name]["ok"] for name in ("database", "broker", "storage"))
    status = "ready" if ready and checks["workers"]["ok"] else ("degraded" if ready else "unavailable")
    body: dict[str, Any] = {"status": status, "checks": checks}
    if not ready:
        failing = ", ".join(name for name in ("database", "broker", "storage") if not checks[name]["ok"])
        body["error"] = {"code": "not_ready", "message": f"unavailable: {failing}"}
    return JSONResponse(
        body, status_code=200 if ready else 503, headers=None if ready else {"Retry-After": "5"}
    )
