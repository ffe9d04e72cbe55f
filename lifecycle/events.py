"""Job events on Redis: a job's start, progress and end, announced once the transaction that
wrote them has committed, so that API processes can wake the clients waiting on that job.

Whoever moves a job (a worker stage, the API canceling) calls ``publish_job_event(session, event)``
inside its transaction; the event is published on the deployment's channel (``<BROKER_KEY_PREFIX>
job-events``) after the commit (``core.db.after_commit``) and dropped on a rollback. An event is a
hint, never the truth: a listener reads the job's row before answering, so a lost message costs a
late answer, not a wrong one. Events carry no result; any job, whatever its media, ends with the
same ``end`` event.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis
from sqlalchemy.orm import Session

from core.config import Settings
from core.db import after_commit
from core.logs import log_event
from core.process_local import per_process
from core.redis import broker_key, redis_at
from core.states import TERMINAL_JOB_STATES

__all__ = [
    "EventChannel",
    "JobEvent",
    "JobEventKind",
    "publish_job_end",
    "publish_job_event",
]

log = logging.getLogger(__name__)

# Publishing happens inside the commit call: a Redis that does not answer must not hold a worker.
_PUBLISH_TIMEOUT_S = 1.0


class JobEventKind(StrEnum):
    STATUS = "status"  # the job changed state (queued → processing) without ending
    PROGRESS = "progress"  # one more segment stored
    END = "end"  # succeeded, failed or canceled: the last event of a job


@dataclass(frozen=True)
class JobEvent:
    job_id: uuid.UUID
    kind: JobEventKind
    status: str
    segments_done: int | None = None
    segments_total: int | None = None
    segment_index: int | None = None  # the segment just stored (progress events)

    def to_json(self) -> str:
        return json.dumps(
            {
                "job_id": str(self.job_id),
                "kind": self.kind.value,
                "status": self.status,
                "segments_done": self.segments_done,
                "segments_total": self.segments_total,
                "segment_index": self.segment_index,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> JobEvent | None:
        """The event in ``raw``, or None when it is not one (listeners skip what they cannot read)."""
        try:
            data = json.loads(raw)
            return cls(
                job_id=uuid.UUID(data["job_id"]),
                kind=JobEventKind(data["kind"]),
                status=str(data["status"]),
                segments_done=_optional_int(data.get("segments_done")),
                segments_total=_optional_int(data.get("segments_total")),
                segment_index=_optional_int(data.get("segment_index")),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class EventChannel:
    """Where a deployment's job events go: the broker's Redis and one channel name."""

    redis_url: str
    name: str

    @classmethod
    def from_settings(cls, settings: Settings) -> EventChannel:
        return cls(redis_url=settings.broker_url, name=broker_key(settings, "job-events"))


def publish_job_event(session: Session, event: JobEvent) -> None:
    """Publishes ``event`` once the session's transaction commits. Sessions that do not know their
    settings (only ``core.db.get_session_factory``'s do) have no channel and publish nothing."""
    if "settings" in session.info:
        after_commit(session, _publish_committed, event)


def publish_job_end(session: Session, *, job_id: uuid.UUID, status: str) -> None:
    """The ``end`` event of a job that moved to a terminal state in this transaction."""
    if status not in TERMINAL_JOB_STATES:
        raise ValueError(f"job {job_id} has not ended (status {status})")
    publish_job_event(session, JobEvent(job_id=job_id, kind=JobEventKind.END, status=status))


def _publish_committed(session: Session, pending: list[JobEvent]) -> None:
    channel = EventChannel.from_settings(session.info["settings"])
    try:
        pipe = _publisher(channel.redis_url).pipeline(transaction=False)
        for item in pending:
            pipe.publish(channel.name, item.to_json())
        pipe.execute()
    except redis.RedisError as exc:
        # Waiting clients re-read the job when their wait ends; nothing is lost but time.
        log_event(
            log,
            "job.events.publish_failed",
            level=logging.WARNING,
            error=type(exc).__name__,
            events=len(pending),
        )


@per_process
def _publisher(url: str) -> redis.Redis:
    return redis_at(url, connect_timeout_s=_PUBLISH_TIMEOUT_S, timeout_s=_PUBLISH_TIMEOUT_S)
