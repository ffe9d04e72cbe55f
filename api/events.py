"""One Redis subscription per API process to the job events (``core.events``), fanned out to the
requests waiting on a job: ``?wait=`` and the event streams hold no thread and no database
connection while they wait, only a small queue here.

The subscription starts with the first waiter and reconnects on its own. Each (re)subscription
tells every waiter to re-read its job (``RESYNC``): what was published while it was down is lost.
While it is down, waiters re-read their job every ``FALLBACK_POLL_S`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.events import EventChannel, JobEvent
from core.logs import log_event

__all__ = ["FALLBACK_POLL_S", "RESYNC", "JobEventHub", "JobEvents"]

log = logging.getLogger(__name__)

FALLBACK_POLL_S = 1.0
# A waiter that does not drain its queue (a slow stream) is told to re-read instead.
_QUEUE_SIZE = 64
_RECONNECT_MIN_S = 0.2
_RECONNECT_MAX_S = 5.0
_CONNECT_TIMEOUT_S = 2.0
_HEALTH_CHECK_S = 15.0


class _Resync:
    """Events may have been missed: read the job again."""

    def __repr__(self) -> str:
        return "RESYNC"


RESYNC: Final = _Resync()


class JobEvents:
    """The events of one job, as one waiting request receives them."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[JobEvent | _Resync] = asyncio.Queue(_QUEUE_SIZE)

    async def next(self, *, timeout_s: float) -> JobEvent | _Resync | None:
        """The next event, RESYNC, or None when ``timeout_s`` passes first."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout=max(timeout_s, 0.0))
        except TimeoutError:
            return None

    def discard_pending(self) -> None:
        """Drops what has arrived so far: the caller is about to read the job, which tells more."""
        while not self._queue.empty():
            self._queue.get_nowait()

    def _put(self, item: JobEvent | _Resync) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.discard_pending()
            self._queue.put_nowait(RESYNC)


class JobEventHub:
    """Every waiting request of this process, keyed by job, behind one subscription."""

    def __init__(self, channel: EventChannel) -> None:
        self._channel = channel
        self._waiters: dict[uuid.UUID, set[JobEvents]] = {}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribed: asyncio.Event | None = None

    @property
    def subscribed(self) -> bool:
        return self._subscribed is not None and self._subscribed.is_set()

    @property
    def waiting(self) -> int:
        """How many requests wait on a job now."""
        return sum(len(waiters) for waiters in self._waiters.values())

    @contextlib.asynccontextmanager
    async def listen(self, job_id: uuid.UUID) -> AsyncIterator[JobEvents]:
        """Receive ``job_id``'s events while inside; enter before reading the job, so an end
        committed after that read is not missed."""
        self._ensure_running()
        events = JobEvents()
        self._waiters.setdefault(job_id, set()).add(events)
        try:
            yield events
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(events)
                if not waiters:
                    del self._waiters[job_id]

    async def ready(self, *, timeout_s: float) -> bool:
        """True once the subscription is confirmed by Redis (within ``timeout_s``)."""
        self._ensure_running()
        assert self._subscribed is not None
        if self._subscribed.is_set():
            return True
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout=timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        # First use, or the loop that ran the listener is gone (a restarted test client).
        self._loop = loop
        self._subscribed = asyncio.Event()
        self._task = loop.create_task(self._listen(), name="job-event-hub")

    def _fan_out(self, item: JobEvent | _Resync, job_id: uuid.UUID | None = None) -> None:
        if job_id is None:
            targets = [events for waiters in self._waiters.values() for events in waiters]
        else:
            targets = list(self._waiters.get(job_id, ()))
        for events in targets:
            events._put(item)

    async def _listen(self) -> None:
        assert self._subscribed is not None
        delay = _RECONNECT_MIN_S
        while True:
            client = aioredis.Redis.from_url(
                self._channel.redis_url,
                socket_connect_timeout=_CONNECT_TIMEOUT_S,
                health_check_interval=_HEALTH_CHECK_S,
            )
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._channel.name)
                while True:
                    message = await pubsub.get_message(timeout=_HEALTH_CHECK_S)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._subscribed.set()
                        delay = _RECONNECT_MIN_S
                        log_event(log, "api.events.subscribed", channel=self._channel.name)
                        self._fan_out(RESYNC)
                    elif message["type"] == "message":
                        event = JobEvent.from_json(message["data"])
                        if event is not None:
                            self._fan_out(event, event.job_id)
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                log_event(
                    log,
                    "api.events.disconnected",
                    level=logging.WARNING,
                    error=type(exc).__name__,
                    retry_in_s=delay,
                )
            finally:
                self._subscribed.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
                    await client.aclose()
            # Waiters fall back to reading their job while the subscription is down.
            self._fan_out(RESYNC)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_S)
