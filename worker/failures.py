"""Failure classification: which errors may pass on another attempt, and what a failed job records.

Only errors listed in ``RETRYABLE_ERRORS`` (plus pipeline errors that say so) are retried; a bug
never is. The failure is written to the job on its last attempt only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from celery.exceptions import SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError as DatabaseInterfaceError
from sqlalchemy.exc import OperationalError as DatabaseOperationalError

from core.errors import ObjectNotFoundError, StorageUnavailableError
from pipeline.errors import InputError, ModelError, PipelineError

__all__ = ["RETRYABLE_ERRORS", "Failure", "FailureKind", "classify"]

# Outages of something we depend on: the same input can succeed once they pass.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    StorageUnavailableError,
    DatabaseOperationalError,
    DatabaseInterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
    BrokerError,
    ConnectionError,
    TimeoutError,
)


class FailureKind(StrEnum):
    USER = "user"  # the input is unusable; the client must send something else
    SYSTEM = "system"  # our side: a dependency, the model, or a bug
    TIMEOUT = "timeout"  # the work ran past its time limit


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    code: str
    message: str
    retryable: bool


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, InputError):
        return Failure(FailureKind.USER, exc.code, exc.message, exc.retryable)
    if isinstance(exc, ModelError):
        return Failure(FailureKind.SYSTEM, exc.code, f"the model could not be used: {exc.message}", False)
    if isinstance(exc, PipelineError):
        kind = FailureKind.TIMEOUT if exc.retryable and "timeout" in exc.code else FailureKind.USER
        return Failure(kind, exc.code, exc.message, exc.retryable)
    if isinstance(exc, ObjectNotFoundError):
        return Failure(
            FailureKind.USER,
            "source_not_found",
            "the video is no longer in storage (deleted or not readable by the service)",
            False,
        )
    if isinstance(exc, SoftTimeLimitExceeded):
        return Failure(FailureKind.TIMEOUT, "timeout", "the analysis ran past its time limit", True)
    if isinstance(exc, RETRYABLE_ERRORS):
        code = "storage_unavailable" if isinstance(exc, StorageUnavailableError) else "dependency_unavailable"
        return Failure(
            FailureKind.SYSTEM, code, f"a service the worker needs was unavailable: {exc}"[:500], True
        )
    return Failure(
        FailureKind.SYSTEM,
        "internal_error",
        f"an internal error stopped the analysis ({type(exc).__name__}); it has been logged",
        False,
    )
