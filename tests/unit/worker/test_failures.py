"""Failure classification: only curated errors are retried, and each failure records its kind."""

from __future__ import annotations

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from core.errors import ObjectNotFoundError, StorageUnavailableError
from pipeline.errors import DecodeTimeoutError, EmptyFileError, ModelError
from worker.failures import FailureKind, classify


def _database_down() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


@pytest.mark.parametrize(
    ("exc", "kind", "code", "retryable"),
    [
        (EmptyFileError("clip.mp4 is empty"), FailureKind.USER, "empty_file", False),
        (ModelError("no checkpoint"), FailureKind.SYSTEM, "model_invalid", False),
        (ObjectNotFoundError("s3://b/k"), FailureKind.USER, "source_not_found", False),
        (SoftTimeLimitExceeded(), FailureKind.TIMEOUT, "timeout", True),
        (StorageUnavailableError("down"), FailureKind.SYSTEM, "storage_unavailable", True),
        (_database_down(), FailureKind.SYSTEM, "dependency_unavailable", True),
        (ZeroDivisionError("a bug"), FailureKind.SYSTEM, "internal_error", False),
    ],
)
def test_classify_sorts_each_error(exc: BaseException, kind: FailureKind, code: str, retryable: bool) -> None:
    failure = classify(exc)

    assert (failure.kind, failure.code, failure.retryable) == (kind, code, retryable)
    assert failure.message


def test_classify_retries_a_decode_timeout() -> None:
    failure = classify(DecodeTimeoutError("ffmpeg took too long"))

    assert failure.retryable
    assert failure.kind is FailureKind.TIMEOUT


def test_classify_never_shows_a_bug_to_the_client() -> None:
    failure = classify(KeyError("secret internals"))

    assert "secret internals" not in failure.message
    assert "KeyError" in failure.message
