"""Job events on the real Redis: published after the commit that ended the job, never after a
rollback, and readable by any listener."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import select

from core.config import Settings, load_settings
from core.db import get_session_factory
from core.keys import get_or_create_tenant
from core.models import Job, Video
from lifecycle.events import EventChannel, JobEvent, JobEventKind
from lifecycle.jobs import cancel_job
from tests.utils.platform import REDIS_URL, clear_broker_keys, fresh_database


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    prefix = f"dfs-test-events-{secrets.token_hex(4)}:"
    with fresh_database() as url:
        yield load_settings(
            environment="test", database_url=url, broker_url=REDIS_URL, broker_key_prefix=prefix
        )
    clear_broker_keys(prefix)


def _new_job(settings: Settings) -> uuid.UUID:
    with get_session_factory(settings)() as session, session.begin():
        tenant = get_or_create_tenant(session, name=f"events-{secrets.token_hex(4)}")
        video = Video(
            tenant_id=tenant.id, filename="clip.mp4", owned=True, storage_key=f"t/{tenant.id}/clip.mp4"
        )
        session.add(video)
        session.flush()
        job = Job(tenant_id=tenant.id, video_id=video.id)
        session.add(job)
        session.flush()
        return job.id


def _messages(pubsub: redis.client.PubSub, *, within_s: float) -> list[JobEvent]:
    found: list[JobEvent] = []
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            event = JobEvent.from_json(message["data"])
            assert event is not None, message
            found.append(event)
    return found


def test_end_is_published_after_commit_and_not_after_rollback(settings: Settings) -> None:
    channel = EventChannel.from_settings(settings)
    assert channel.name == f"{settings.broker_key_prefix}job-events"
    listener = redis.Redis.from_url(REDIS_URL).pubsub()
    listener.subscribe(channel.name)
    assert listener.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
    job_id = _new_job(settings)

    with get_session_factory(settings)() as session:
        assert cancel_job(session, job_id=job_id)
        # Nothing goes out before the commit, and a rollback drops it.
        assert _messages(listener, within_s=0.3) == []
        session.rollback()
    assert _messages(listener, within_s=0.5) == []

    with get_session_factory(settings)() as session, session.begin():
        assert cancel_job(session, job_id=job_id)
        assert session.scalar(select(Job.status).where(Job.id == job_id)) == "canceled"
    assert _messages(listener, within_s=1.0) == [
        JobEvent(job_id=job_id, kind=JobEventKind.END, status="canceled")
    ]
    listener.close()


def test_unreadable_messages_are_not_events() -> None:
    for raw in (
        b"",
        b"{}",
        b"not json",
        b'{"job_id": "x", "kind": "end", "status": "failed"}',
        b'{"job_id": "%s", "kind": "exploded", "status": "failed"}' % str(uuid.uuid4()).encode(),
    ):
        assert JobEvent.from_json(raw) is None
    event = JobEvent(uuid.uuid4(), JobEventKind.PROGRESS, "processing", 2, 5, 1)
    assert JobEvent.from_json(event.to_json()) == event
