"""Turns every error into ``{"error": {"code", "message"}}`` with the right status, FastAPI's own too."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from api.schemas.errors import ErrorBody
from api.security_headers import security_headers
from core.errors import ServiceError
from core.logs import log_event

__all__ = [
    "BodyRejected",
    "database_unavailable",
    "error_response",
    "error_responses",
    "register_error_handlers",
    "validation_message",
]

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}

_DESCRIPTIONS = {
    401: "missing, unknown or revoked API key",
    404: "no such resource for this tenant",
    408: "the request body did not arrive in time",
    409: "conflicts with the resource's state or an earlier request",
    413: "past a size limit",
    415: "not a supported video container or content type",
    422: "invalid request",
    429: "past a limit that passes with time; retry after Retry-After seconds",
    503: "a dependency is unavailable; retry after Retry-After seconds",
}


class BodyRejected(StarletteHTTPException):
    """A request body refused while it is read (past its cap, or too slow): raised from the
    request's ``receive`` by ``api.guard``. An HTTPException, so that FastAPI's own body parsing
    lets it through; the connection is closed after the answer, the body being unread."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(status_code, detail=message, headers={"Connection": "close"})
        self.code = code
        self.message = message


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the error statuses a route can answer."""
    return {
        status: {"model": ErrorBody, "description": _DESCRIPTIONS.get(status, "error")} for status in statuses
    }


def error_response(
    status_code: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status_code, headers=headers
    )


def validation_message(errors: Any) -> str:
    """pydantic's error list → one readable line: ``body.sample_fps: Input should be greater than 0``."""
    parts = []
    for error in list(errors)[:10]:
        location = ".".join(str(p) for p in error.get("loc", ()))
        message = str(error.get("msg", "invalid"))
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "invalid request"


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    if exc.status_code >= 500:
        log_event(
            log,
            "api.request.unavailable",
            level=logging.WARNING,
            path=request.url.path,
            code=exc.code,
            detail=exc.message,
        )
    return error_response(exc.status_code, exc.code, exc.message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "validation_error", validation_message(exc.errors()))


async def _body_rejected(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyRejected)
    log_event(log, "api.body.refused", path=request.url.path, code=exc.code, status=exc.status_code)
    return error_response(exc.status_code, exc.code, exc.message, dict(exc.headers or {}))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.url.path}"
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


def database_unavailable(exc: Exception, *, path: str) -> JSONResponse | None:
    """The 503 for a connection-level database failure; None for any other error (a bug)."""
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        log_event(
            log,
            "api.database.unavailable",
            level=logging.WARNING,
            path=path,
            detail=str(getattr(exc, "orig", exc))[:300],
        )
        return error_response(
            503, "database_unavailable", "the database is unavailable; retry shortly", {"Retry-After": "5"}
        )
    return None


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # Connection-level failures only; anything else is a bug and stays a 500.
    return database_unavailable(exc, path=request.url.path) or await _unexpected_error(request, exc)


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    # The client hung up mid-request (usually mid-upload); nothing it sent was kept.
    log_event(log, "api.request.disconnected", path=request.url.path)
    return error_response(
        400, "client_disconnected", "the client closed the connection before the request ended"
    )


async def _value_error(request: Request, exc: Exception) -> JSONResponse:
    # PostgreSQL text cannot hold NUL, and psycopg2 refuses such a value before sending it: a
    # client's text (query parameter, JSON field, form field) carried one, on whatever route.
    if "NUL (0x00)" in str(exc):
        return error_response(
            422, "invalid_characters", "text in the request must not contain NUL (\\u0000) characters"
        )
    return await _unexpected_error(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("api.request.crashed", extra={"event_fields": {"path": request.url.path}}, exc_info=exc)
    # Answered by Starlette outside every middleware: the security headers are added here.
    return error_response(
        500,
        "internal_error",
        "an internal error occurred; it has been logged",
        security_headers(request.url.path),
    )


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(BodyRejected, _body_rejected)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(ValueError, _value_error)
    app.add_exception_handler(Exception, _unexpected_error)
