"""The batch command's side of HTTP: its API client, requests repeated on transient answers, a
refused key that stops the command, and its exit codes."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_ITEMS_FAILED",
    "EXIT_MANIFEST",
    "EXIT_OK",
    "EXIT_USAGE",
    "RETRY_STATUSES",
    "CliError",
    "KeyRefusedError",
    "api_client",
    "api_request",
    "error_text",
    "key_refused",
    "upload_chunks",
]

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_MANIFEST = 3
EXIT_ITEMS_FAILED = 4  # the batch ran, but some of its items failed (or could not be uploaded)

# Transient answers worth waiting for: the tenant's jobs in flight are at the limit, or a
# dependency is briefly down. The request carries an Idempotency-Key, so repeating it is safe.
RETRY_STATUSES = (429, 502, 503, 504)
_MAX_RETRIES = 5
_UPLOAD_CHUNK = 256 * 1024


class CliError(Exception):
    def __init__(self, message: str, *, exit_code: int = EXIT_API_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class KeyRefusedError(CliError):
    """The API refused the key: every further request would be refused too (and would spend the
    address's failed-key budget), so the command stops at once."""

    def __init__(self, response: Any) -> None:
        super().__init__(
            f"{error_text(response)}; check --key or $DEEPFAKESTREAM_API_KEY (nothing more was sent)"
        )


def key_refused(response: Any) -> bool:
    if response.status_code == 401:
        return True
    if response.status_code != 429:
        return False
    try:
        return bool(response.json()["error"]["code"] == "too_many_auth_failures")
    except (ValueError, KeyError, TypeError):
        return False


def error_text(response: Any) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def _retry_after(response: Any, attempt: int) -> float:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else min(2.0**attempt, 60.0)


def api_request(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    """One API call, repeated on transient answers and connection errors; CliError otherwise."""
    import httpx

    for attempt in range(_MAX_RETRIES + 1):
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            if attempt == _MAX_RETRIES:
                raise CliError(f"cannot reach the API at {client.base_url}: {exc}") from exc
            time.sleep(min(2.0**attempt, 30.0))
            continue
        if key_refused(response):
            raise KeyRefusedError(response)
        if response.status_code in RETRY_STATUSES and attempt < _MAX_RETRIES:
            wait = _retry_after(response, attempt)
            print(f"{error_text(response)}; retrying in {wait:.0f} s", file=sys.stderr)
            time.sleep(wait)
            continue
        if response.status_code >= 400:
            raise CliError(error_text(response))
        return response
    raise AssertionError("unreachable")


def api_client(args: argparse.Namespace) -> Any:
    import httpx

    if not args.key:
        raise CliError("an API key is needed: --key or $DEEPFAKESTREAM_API_KEY", exit_code=EXIT_USAGE)
    return httpx.Client(
        base_url=args.api.rstrip("/"),
        headers={"Authorization": f"Bearer {args.key}"},
        timeout=args.timeout,
    )


def upload_chunks(source: BinaryIO, progress: Any) -> Iterator[bytes]:
    while chunk := source.read(_UPLOAD_CHUNK):
        progress.update(len(chunk))
        yield chunk
