"""The request-body guard: every body is authenticated before it is read, capped and timed.

An ASGI middleware in front of every route, so no route can forget it:

- a request that carries a body (a ``Content-Length`` above zero, or ``Transfer-Encoding``) is
  authenticated from its headers first; a missing or wrong key is answered 401 without the body
  being parsed or kept (at most 64 KiB of it is read and dropped, so that a client still sending
  reads the answer), and the connection is closed;
- the route's cap is checked against ``Content-Length`` before reading, and against the bytes
  actually read as they arrive (a chunked body stops being read at the cap): 413;
- the whole body must arrive within a deadline on the wall clock, with no wait for the next bytes
  longer than ``BODY_IDLE_TIMEOUT_S``: 408.

A refusal while the route reads is raised from ``receive`` as ``BodyRejected``, which the error
handlers answer with its typed body; the route's own code unwinds as for any other error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from api.body import MULTIPART_OVERHEAD_BYTES
from api.deps import authenticate_request
from api.errors import BodyRejected, database_unavailable, error_response
from api.services.images import json_body_limit, json_body_limit_message
from core.config import Settings
from core.errors import ServiceError

__all__ = ["BodyGuard", "BodyLimits", "body_limits"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CLOSE = {"Connection": "close"}
# A refused body this small (or the start of a chunked one) is read and dropped before the answer,
# briefly: a client still sending then reads the answer instead of a reset connection. Anything
# larger is left unread.
_DISCARD_MAX_BYTES = 64 * 1024
_DISCARD_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class BodyLimits:
    """What one request's body may be: at most ``max_bytes``, in at most ``timeout_s``."""

    max_bytes: int
    timeout_s: float
    too_large_code: str
    what: str  # "video upload" or "request body", for messages
    too_large_message: str | None = None  # said instead, where the cap needs explaining


def body_limits(settings: Settings, *, method: str, path: str, content_type: str) -> BodyLimits:
    """A video upload (a multipart job or a direct upload's PUT) may be as large as MAX_UPLOAD_BYTES
    and take UPLOAD_BODY_TIMEOUT_S; a batch its own cap; every other body is a small JSON one."""
    path = path.rstrip("/")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if (method == "PUT" and path.startswith("/v1/uploads/")) or (
        method == "POST" and path == "/v1/jobs" and media_type == "multipart/form-data"
    ):
        overhead = MULTIPART_OVERHEAD_BYTES if media_type == "multipart/form-data" else 0
        return BodyLimits(
            max_bytes=settings.max_upload_bytes + overhead,
            timeout_s=settings.upload_body_timeout_s,
            too_large_code="file_too_large",
            what="video upload",
        )
    if method == "POST" and path == "/v1/jobs":
        # The JSON form may carry a picture as base64: the body's cap follows the picture's, so
        # the one a client meets is the documented MAX_IMAGE_BASE64_BYTES, not the small JSON cap.
        return BodyLimits(
            max_bytes=json_body_limit(settings),
            timeout_s=settings.body_timeout_s,
            too_large_code="body_too_large",
            what="request body",
            too_large_message=json_body_limit_message(settings),
        )
    max_bytes = settings.batch_body_max_bytes if method == "POST" and path == "/v1/batches" else None
    return BodyLimits(
        max_bytes=max_bytes or settings.json_body_max_bytes,
        timeout_s=settings.body_timeout_s,
        too_large_code="body_too_large",
        what="request body",
    )


def _too_large(limits: BodyLimits) -> BodyRejected:
    message = (
        limits.too_large_message or f"the {limits.what} is larger than its {limits.max_bytes} byte limit"
    )
    return BodyRejected(413, limits.too_large_code, message)


class _GuardedBody:
    """The request's ``receive``, counting and timing the body's bytes."""

    def __init__(self, receive: Receive, limits: BodyLimits, *, idle_s: float) -> None:
        self._receive = receive
        self._limits = limits
        self._idle_s = idle_s
        loop = asyncio.get_running_loop()
        self._clock = loop.time
        self._deadline = loop.time() + limits.timeout_s
        self._ended = False
        self.read_bytes = 0
        self.rejection: BodyRejected | None = None

    def _too_slow(self, waited_s: float, *, idle: bool) -> BodyRejected:
        message = (
            f"the {self._limits.what} sent nothing for {waited_s:g} s"
            if idle
            else f"the {self._limits.what} did not arrive within {self._limits.timeout_s:g} s"
        )
        return BodyRejected(408, "body_timeout", message)

    async def receive(self) -> Message:
        if self.rejection is not None:
            raise self.rejection
        if self._ended:  # after the body only a disconnect can come: no deadline for that wait
            return await self._receive()
        remaining = self._deadline - self._clock()
        wait_s = min(remaining, self._idle_s)
        try:
            if wait_s <= 0:
                raise TimeoutError
            message = await asyncio.wait_for(self._receive(), wait_s)
        except TimeoutError:
            self.rejection = self._too_slow(wait_s, idle=wait_s < remaining)
            raise self.rejection from None
        if message["type"] == "http.request":
            self.read_bytes += len(message.get("body", b""))
            if self.read_bytes > self._limits.max_bytes:
                self.rejection = _too_large(self._limits)
                raise self.rejection
            if not message.get("more_body", False):
                self._ended = True
        return message


async def _discard(receive: Receive) -> None:
    """Reads and drops at most ``_DISCARD_MAX_BYTES`` of a refused body, for at most
    ``_DISCARD_TIMEOUT_S``; nothing is kept or parsed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _DISCARD_TIMEOUT_S
    dropped = 0
    while dropped <= _DISCARD_MAX_BYTES:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        try:
            message = await asyncio.wait_for(receive(), remaining)
        except TimeoutError:
            return
        if message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class BodyGuard:
    """ASGI middleware: authentication before the body, size caps and read deadlines for it."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared_raw = _header(scope, b"content-length")
        chunked = _header(scope, b"transfer-encoding") is not None
        declared = int(declared_raw) if declared_raw and declared_raw.strip().isdigit() else None
        if not chunked and not declared:
            await self.app(scope, receive, send)  # no body to read
            return
        settings = self.settings
        limits = body_limits(
            settings,
            method=scope["method"],
            path=scope["path"],
            content_type=_header(scope, b"content-type") or "",
        )
        client = scope.get("client")
        try:
            key = await run_in_threadpool(
                authenticate_request,
                settings,
                authorization=_header(scope, b"authorization"),
                client=client[0] if client else "unknown",
                method=scope["method"],
            )
        except ServiceError as exc:
            if declared is None or declared <= _DISCARD_MAX_BYTES:
                await _discard(receive)
            await self._refuse(scope, receive, send, exc.status_code, exc.code, exc.message, exc.headers)
            return
        except DBAPIError as exc:
            unavailable = database_unavailable(exc, path=scope["path"])
            if unavailable is None:
                raise
            unavailable.headers["Connection"] = "close"
            await unavailable(scope, receive, send)
            return
        if declared is not None and declared > limits.max_bytes:
            refusal = _too_large(limits)
            if declared <= _DISCARD_MAX_BYTES:
                await _discard(receive)
            await self._refuse(scope, receive, send, 413, refusal.code, refusal.message, None)
            return
        scope.setdefault("state", {})["api_key"] = key
        body = _GuardedBody(receive, limits, idle_s=settings.body_idle_timeout_s)
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body.receive, send_tracked)
        except BodyRejected as exc:
            # A route that let the refusal escape its handlers: answer it here if nothing was sent.
            if started:
                raise
            await self._refuse(scope, receive, send, exc.status_code, exc.code, exc.message, None)

    @staticmethod
    async def _refuse(
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None,
    ) -> None:
        # The body stays unread, so the connection cannot carry another request: close it.
        response = error_response(status, code, message, {**(headers or {}), **_CLOSE})
        await response(scope, receive, send)
