"""Typed errors of the service: a stable code, a clear message and the HTTP status that carries them."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConflictError",
    "ForbiddenError",
    "InvalidRequestError",
    "NotFoundError",
    "ObjectNotFoundError",
    "PayloadTooLargeError",
    "ServiceError",
    "ServiceUnavailableError",
    "StorageUnavailableError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
]


class ConfigError(Exception):
    """The settings are wrong: the process refuses to start."""


class ServiceError(Exception):
    """An error the client can act on. The API turns it into ``{"error": {"code", "message"}}``."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def __str__(self) -> str:
        return self.message


class InvalidRequestError(ServiceError):
    status_code = 422
    code = "invalid_request"


class UnauthorizedError(ServiceError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class ForbiddenError(ServiceError):
    status_code = 403
    code = "forbidden"


class NotFoundError(ServiceError):
    status_code = 404
    code = "not_found"


class ConflictError(ServiceError):
    status_code = 409
    code = "conflict"


class PayloadTooLargeError(ServiceError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class TooManyRequestsError(ServiceError):
    """Past a limit that passes with time (jobs in flight, request rates); retry after Retry-After."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, code: str | None = None, retry_after_s: int = 30) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after_s)})


class ServiceUnavailableError(ServiceError):
    """A dependency is down; the client should retry later."""

    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, code: str | None = None, retry_after_s: int = 5) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after_s)})


class StorageUnavailableError(ServiceUnavailableError):
    """Object storage did not answer or refused for a reason that may pass (retried by workers)."""

    code = "storage_unavailable"


class ObjectChangedError(Exception):
    """The object is no longer the version that was checked (a conditional copy was refused)."""

    def __init__(self, location: str) -> None:
        super().__init__(f"object changed since it was checked: {location}")
        self.location = location


class ObjectNotFoundError(Exception):
    """The object is not in storage (or the bucket is not readable)."""

    def __init__(self, location: str, *, reason: str = "not found") -> None:
        super().__init__(f"object {reason}: {location}")
        self.location = location
