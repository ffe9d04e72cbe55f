"""One Redis subscription per API process to the job events (``lifecycle.events``), fanned out to the
requests waiting on a job: ``?wait=`` and the event streams hold no thread and no database
connection while they wait, only a small queue here.

The subscription starts with the first waiter and reconnects on its own. Each (re)subscription
tells every waiter to re-read its job (``RESYNC``): what was published while it was down is lost.
While it is down, waiters re-read their job every ``FALLBACK_POLL_S`` instead.

Waiters woken by the same event share one read of their job (``read_shared``): a job's end wakes
every request waiting on it at once, and each reading the row itself made the last answer wait for
hundreds of reads (bench/api.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Final, TypeVar, cast

from redis.exceptions import RedisError

from core.logs import log_event
from core.redis import async_redis_at
from lifecycle.events import EventChannel, JobEvent

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


T = TypeVar("T")


class JobEvents:
    """The events of one job, as one waiting request receives them."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[int, JobEvent | _Resync]] = asyncio.Queue(_QUEUE_SIZE)
        # The hub's count of received messages when the item last returned by ``next`` came: a
        # read started after that count saw what the item announced.
        self.received_at = 0

    async def next(self, *, timeout_s: float) -> JobEvent | _Resync | None:
        """The next event, RESYNC, or None when ``timeout_s`` passes first."""
        try:
            self.received_at, item = await asyncio.wait_for(self._queue.get(), timeout=max(timeout_s, 0.0))
        except TimeoutError:
            return None
        return item

    def discard_pending(self) -> None:
        """Drops what has arrived so far: the caller is about to read the job, which tells more."""
        while not self._queue.empty():
            self._queue.get_nowait()

    def _put(self, item: JobEvent | _Resync, received_at: int) -> None:
        try:
            self._queue.put_nowait((received_at, item))
        except asyncio.QueueFull:
            self.discard_pending()
            self._queue.put_nowait((received_at, RESYNC))


class JobEventHub:
    """Every waiting request of this process, keyed by job, behind one subscription."""

    def __init__(self, channel: EventChannel) -> None:
        self._channel = channel
        self._waiters: dict[uuid.UUID, set[JobEvents]] = {}
        # Counts the messages received (and the moments a waiter asked for a fresh read): reads
        # are stamped with it, so a waiter knows whether a read began after what it heard.
        self._received = 0
        # Per job, per scope (the tenant): the latest read and the count when it began.
        self._reads: dict[uuid.UUID, dict[Hashable, tuple[int, asyncio.Future[object]]]] = {}
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
                    self._reads.pop(job_id, None)

    def fresh(self) -> int:
        """A count no read has begun after yet: for a waiter that must read the job anew (its
        wait timed out, or no subscription tells it of changes)."""
        self._received += 1
        return self._received

    async def read_shared(
        self, job_id: uuid.UUID, scope: Hashable, *, not_before: int, load: Callable[[], Awaitable[T]]
    ) -> T:
        """``load()``'s answer, shared by the waiters of ``job_id`` in the same ``scope`` (a tenant:
        what one tenant reads never answers another): a read that began at ``not_before`` or
        later is reused, running or done, else a new one begins. Call inside ``listen(job_id)``."""
        reads = self._reads.setdefault(job_id, {})
        entry = reads.get(scope)
        if entry is None or entry[0] < not_before:
            future: asyncio.Future[object] = asyncio.ensure_future(load())
            entry = (self._received, future)
            reads[scope] = entry
            future.add_done_callback(functools.partial(self._forget_failure, job_id, scope, entry))
        # Shielded: one waiter going away (its client disconnected) must not cancel the others' read.
        return cast(T, await asyncio.shield(entry[1]))

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

    def _forget_failure(
        self,
        job_id: uuid.UUID,
        scope: Hashable,
        entry: tuple[int, asyncio.Future[object]],
        done: asyncio.Future[object],
    ) -> None:
        # A failed read (the database away) is not handed to later waiters.
        if not done.cancelled() and done.exception() is None:
            return
        reads = self._reads.get(job_id, {})
        if reads.get(scope) is entry:
            del reads[scope]

    def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        # First use, or the loop that ran the listener is gone (a restarted test client).
        self._loop = loop
        self._subscribed = asyncio.Event()
        self._task = loop.create_task(self._listen(), name="job-event-hub")

    def _fan_out(self, item: JobEvent | _Resync, job_id: uuid.UUID | None = None) -> None:
        self._received += 1
        if job_id is None:
            targets = [events for waiters in self._waiters.values() for events in waiters]
        else:
            targets = list(self._waiters.get(job_id, ()))
        for events in targets:
            events._put(item, self._received)

    async def _listen(self) -> None:
        assert self._subscribed is not None
        delay = _RECONNECT_MIN_S
        while True:
            client = async_redis_at(
                self._channel.redis_url,
                connect_timeout_s=_CONNECT_TIMEOUT_S,
                health_check_interval_s=_HEALTH_CHECK_S,
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
