"""Waiting on a condition instead of a fixed sleep: poll until it holds, fail naming what never came."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_for", "wait_for_async"]


def wait_for(predicate: Callable[[], Any], *, timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    """Polls until ``predicate()`` is truthy and returns it; AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # the service may not be up yet; keep the last reason
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval_s)
    raise _timed_out(timeout_s, what, last_error)


async def wait_for_async(
    predicate: Callable[[], Any], *, timeout_s: float, what: str, interval_s: float = 0.02
) -> Any:
    """``wait_for`` inside an event loop: the loop keeps running between polls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last_error: BaseException | None = None
    while loop.time() < deadline:
        try:
            value = predicate()
        except Exception as exc:
            last_error = exc
            value = None
        if value:
            return value
        await asyncio.sleep(interval_s)
    raise _timed_out(timeout_s, what, last_error)


def _timed_out(timeout_s: float, what: str, last_error: BaseException | None) -> AssertionError:
    return AssertionError(
        f"timed out after {timeout_s:.0f}s waiting for {what}"
        + (f" (last error: {last_error!r})" if last_error else "")
    )
