"""Answers without polling loops: ``?wait=S`` on a job, its Server-Sent Events stream, and the
signed token a browser's EventSource (which cannot send headers) opens that stream with.

While a request waits it holds an entry in the process's ``JobEventHub`` and nothing else: no
thread, no database connection. Every answer is built from the job's row, read in one short
session; events only say when to read it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.events import FALLBACK_POLL_S, RESYNC, JobEventHub
from api.schemas.jobs import JobPublic
from api.services.jobs import get_job
from core.config import Settings
from core.db import get_read_session_factory
from core.errors import InvalidRequestError, NotFoundError
from core.keys import live_key
from core.models import ApiKey
from core.states import TERMINAL_JOB_STATES, JobStatus
from core.tokens import read_token, sign_token
from lifecycle.events import JobEvent, JobEventKind

__all__ = [
    "StreamToken",
    "check_wait",
    "issue_stream_token",
    "job_reader",
    "key_for_stream_token",
    "parse_job_id",
    "read_job",
    "stream_is_over",
    "stream_job_events",
    "wait_for_job",
]

log = logging.getLogger(__name__)

# How long a waiter lets the hub confirm its subscription before reading the job anyway (and
# polling it every FALLBACK_POLL_S while Redis is away).
_SUBSCRIBE_WAIT_S = 1.0
_STREAM_RETRY_MS = 3000
# Derived from the deployment's secret for this purpose only (``core.tokens``).
_TOKEN_CONTEXT = b"deepfakestream job event stream token v1"

# A stream re-reads its key at least this far apart, even without a key cache (API_KEY_CACHE_S=0).
_KEY_CHECK_MIN_S = 1.0

JobReader = Callable[[], Awaitable[JobPublic]]
KeyCheck = Callable[[], Awaitable[bool]]


def check_wait(wait: float | None, settings: Settings) -> float | None:
    """``?wait=`` within this service's cap (WAIT_MAX_S), or a typed 422; 0 or absent: no wait."""
    if wait is None or wait == 0:
        return None
    if wait > settings.wait_max_s:
        raise InvalidRequestError(
            f"query.wait: must be at most {settings.wait_max_s:g} seconds on this service",
            code="validation_error",
        )
    return wait


def read_job(settings: Settings, *, tenant_id: uuid.UUID, job_id: str) -> JobPublic:
    """The tenant's job as GET /v1/jobs/{id} answers it, from a session held only for the read."""
    with get_read_session_factory(settings)() as session:
        return JobPublic.from_job(get_job(session, tenant_id=tenant_id, job_id=job_id))


def job_reader(settings: Settings, *, tenant_id: uuid.UUID, job_id: str) -> JobReader:
    async def read() -> JobPublic:
        return await run_in_threadpool(read_job, settings, tenant_id=tenant_id, job_id=job_id)

    return read


def _ended(job: JobPublic) -> bool:
    return job.status in TERMINAL_JOB_STATES


async def wait_for_job(
    hub: JobEventHub, *, job_id: uuid.UUID, tenant_id: uuid.UUID, read: JobReader, timeout_s: float
) -> JobPublic:
    """The job once it has ended, or as it stands when ``timeout_s`` has passed. The waiters of
    one job and tenant woken by the same event share one read (``JobEventHub.read_shared``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with hub.listen(job_id) as events:
        # Subscribed before the read: an end committed after it is published after it, and heard.
        await hub.ready(timeout_s=min(_SUBSCRIBE_WAIT_S, timeout_s))
        events.discard_pending()  # e.g. the subscription's first RESYNC: this read is newer
        # A read of its own: one begun earlier may predate an end whose message was lost.
        job = await hub.read_shared(job_id, tenant_id, not_before=hub.fresh(), load=read)
        while not _ended(job):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            step = remaining if hub.subscribed else min(remaining, FALLBACK_POLL_S)
            item = await events.next(timeout_s=step)
            if isinstance(item, JobEvent) and item.kind is not JobEventKind.END:
                continue  # progress: nothing for a waiter to answer yet
            not_before = hub.fresh() if item is None else events.received_at
            job = await hub.read_shared(job_id, tenant_id, not_before=not_before, load=read)
    return job


@dataclass(frozen=True)
class _Version:
    """Where a job stands, in the order a stream moves: the id of each event it sends."""

    rank: int  # 0 queued, 1 processing, 2 ended
    segments_done: int

    def __str__(self) -> str:
        return f"{self.rank}.{self.segments_done}"

    @classmethod
    def of(cls, job: JobPublic) -> _Version:
        rank = 2 if _ended(job) else (1 if job.status is JobStatus.PROCESSING else 0)
        return cls(rank, job.progress.segments_done)

    @classmethod
    def parse(cls, text: str | None) -> _Version | None:
        try:
            rank, done = (text or "").split(".")
            return cls(int(rank), int(done))
        except ValueError:
            return None

    def __lt__(self, other: _Version) -> bool:
        return (self.rank, self.segments_done) < (other.rank, other.segments_done)


def _frame(event: str, data: str, version: _Version) -> str:
    return f"id: {version}\nevent: {event}\ndata: {data}\n\n"


def _job_frame(job: JobPublic) -> str:
    version = _Version.of(job)
    return _frame("end" if version.rank == 2 else "status", job.model_dump_json(), version)


def stream_is_over(job: JobPublic, last_event_id: str | None) -> bool:
    """The client already has this ended job's last event: answer 204 so it stops reconnecting."""
    seen = _Version.parse(last_event_id)
    return _ended(job) and seen is not None and not seen < _Version.of(job)


async def stream_job_events(
    hub: JobEventHub,
    *,
    job_id: uuid.UUID,
    tenant_id: uuid.UUID,
    read: JobReader,
    first: JobPublic,
    last_event_id: str | None,
    settings: Settings,
    key_is_live: KeyCheck,
) -> AsyncIterator[str]:
    """SSE frames: ``status`` (the whole job) when its state changes, ``progress`` per stored
    segment, ``end`` (the whole job) last; ``: heartbeat`` comments while nothing happens. The
    stream closes after ``end``, or after EVENTS_STREAM_MAX_S (the client reconnects), or with a
    ``revoked`` frame once ``key_is_live`` (asked every API_KEY_CACHE_S) says the key that opened
    it is no longer live: a stream must not outlive its key for longer than a request would."""
    loop = asyncio.get_running_loop()
    closes_at = loop.time() + settings.events_stream_max_s
    key_check_s = max(settings.api_key_cache_s, _KEY_CHECK_MIN_S)
    key_check_at = loop.time() + key_check_s
    heartbeat_at = loop.time() + settings.events_heartbeat_s
    sent = _Version.parse(last_event_id) or _Version(-1, -1)
    async with hub.listen(job_id) as events:
        yield f"retry: {_STREAM_RETRY_MS}\n\n"
        ready = await hub.ready(timeout_s=_SUBSCRIBE_WAIT_S)
        events.discard_pending()
        # Read again now that the subscription holds (``first`` came before it).
        job = await hub.read_shared(job_id, tenant_id, not_before=hub.fresh(), load=read) if ready else first
        while True:
            version = _Version.of(job)
            if sent < version or (version.rank == 2):
                yield _job_frame(job)
                sent = version
            if version.rank == 2:
                return
            now = loop.time()
            if now >= key_check_at:
                if not await key_is_live():
                    yield _REVOKED_FRAME
                    return
                now = loop.time()
                key_check_at = now + key_check_s
            remaining = closes_at - now
            if remaining <= 0:
                return
            step = min(remaining, heartbeat_at - now, key_check_at - now)
            if not hub.subscribed:
                step = min(step, FALLBACK_POLL_S)
            item = await events.next(timeout_s=step)
            if item is None:
                if hub.subscribed and loop.time() < heartbeat_at:
                    continue  # the key's turn, not the heartbeat's
                heartbeat_at = loop.time() + settings.events_heartbeat_s
                yield ": heartbeat\n\n"
                # A lost message costs at most one heartbeat.
                job = await hub.read_shared(job_id, tenant_id, not_before=hub.fresh(), load=read)
                continue
            heartbeat_at = loop.time() + settings.events_heartbeat_s
            if item is RESYNC:
                job = await hub.read_shared(job_id, tenant_id, not_before=events.received_at, load=read)
            elif isinstance(item, JobEvent) and item.kind is JobEventKind.PROGRESS:
                progress = _Version(1, item.segments_done or 0)
                if sent < progress:
                    yield _frame("progress", _progress_data(item), progress)
                    sent = progress
            else:
                job = await hub.read_shared(job_id, tenant_id, not_before=events.received_at, load=read)


# The last frame of a stream whose key was revoked (or its tenant deactivated) while it ran; no
# ``id``, so a client's Last-Event-ID stays the last event it really got.
_REVOKED_FRAME = (
    "event: revoked\ndata: "
    + json.dumps(
        {"error": {"code": "invalid_api_key", "message": "the API key that opened this stream was revoked"}},
        separators=(",", ":"),
    )
    + "\n\n"
)


def _progress_data(event: JobEvent) -> str:
    return json.dumps(
        {
            "id": str(event.job_id),
            "status": event.status,
            "segment": event.segment_index,
            "progress": {"segments_done": event.segments_done, "segments_total": event.segments_total},
        },
        separators=(",", ":"),
    )


# Signed stream tokens: "v1.<payload>.<signature>", the payload naming the API key, the job and
# the expiry. Only a key that could read the job gets one; the key is checked again (live, tenant
# active) every time a stream opens with it, so revoking the key stops its tokens too.


@dataclass(frozen=True)
class StreamToken:
    token: str
    expires_at: datetime


def issue_stream_token(settings: Settings, *, key: ApiKey, job_id: uuid.UUID) -> StreamToken:
    expires = int(time.time()) + settings.stream_token_ttl_s
    token = sign_token(
        settings, purpose=_TOKEN_CONTEXT, claims={"k": str(key.id), "j": str(job_id), "e": expires}
    )
    return StreamToken(token=token, expires_at=datetime.fromtimestamp(expires, UTC))


def key_for_stream_token(session: Session, settings: Settings, *, token: str, job_id: str) -> ApiKey | None:
    """The live key a valid, unexpired token for ``job_id`` was issued to; None otherwise, whatever
    the token holds (the caller answers every None alike, a 401 counted as a failed key)."""
    claims = read_token(settings, purpose=_TOKEN_CONTEXT, token=token)
    if claims is None:
        return None
    try:
        key_id = uuid.UUID(claims["k"])
        expires = int(claims["e"])
        same_job = uuid.UUID(str(claims["j"])) == uuid.UUID(job_id)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
        return None
    if expires < time.time() or not same_job:
        return None
    return live_key(session, key_id=key_id)


def parse_job_id(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(job_id)
    except ValueError as exc:
        raise NotFoundError("no job with this id", code="job_not_found") from exc
