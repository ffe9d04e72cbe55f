"""Each request's access line and its Prometheus observation, as plain ASGI middleware.

Plain ASGI, not Starlette's ``BaseHTTPMiddleware``: that one runs every request through a task
group and a memory stream, which was a sizeable share of a status poll's cost (bench/api.py). The
duration runs to the last byte sent, so a stream's line tells how long it was open.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.logs import log_event
from core.metrics import UNMATCHED_ROUTE, observe_http_request

__all__ = ["AccessLogMiddleware"]

log = logging.getLogger("api.access")

# Probes and scrapes arrive every few seconds; their access lines would drown the rest.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            _record(scope, status, time.perf_counter() - started)


def _record(scope: Scope, status: int, elapsed: float) -> None:
    route: Any = scope.get("route")
    # The route template, never the raw path, labels the histogram: bounded series.
    observe_http_request(
        method=scope["method"],
        route=getattr(route, "path", UNMATCHED_ROUTE),
        status=status,
        seconds=elapsed,
    )
    path_params = scope.get("path_params") or {}
    ids = {name: path_params[name] for name in ("job_id", "batch_id") if path_params.get(name)}
    path = scope.get("path", "")
    log_event(
        log,
        "api.request.completed",
        level=logging.DEBUG if path in _QUIET_PATHS else logging.INFO,
        method=scope["method"],
        route=getattr(route, "path", path),
        status=status,
        duration_ms=round(elapsed * 1000, 1),
        **ids,
    )
