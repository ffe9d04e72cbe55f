"""What the outbox and the job events queue on core.db's after-commit hook, without a database."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from core.config import load_settings
from core.db import queued_after_commit
from lifecycle import events, outbox
from lifecycle.events import JobEvent, JobEventKind, publish_job_event


def _session(*, with_settings: bool) -> Session:
    return Session(info={"settings": load_settings(environment="test")} if with_settings else {})


def test_the_outbox_sends_at_most_its_cap_per_transaction() -> None:
    session = _session(with_settings=True)
    ids = [uuid.uuid4() for _ in range(outbox.SEND_ON_COMMIT_MAX + 20)]
    taken = outbox.send_after_commit(session, ids[:30])
    taken += outbox.send_after_commit(session, ids[30:])
    assert taken == ids[: outbox.SEND_ON_COMMIT_MAX]
    assert outbox.send_after_commit(session, [uuid.uuid4()]) == []
    assert queued_after_commit(session, outbox._send_committed) == outbox.SEND_ON_COMMIT_MAX


def test_sessions_that_do_not_know_their_settings_queue_nothing() -> None:
    session = _session(with_settings=False)
    assert outbox.send_after_commit(session, [uuid.uuid4()]) == []
    publish_job_event(session, JobEvent(job_id=uuid.uuid4(), kind=JobEventKind.STATUS, status="processing"))
    assert session.info == {}


def test_job_events_wait_for_the_commit() -> None:
    session = _session(with_settings=True)
    event = JobEvent(job_id=uuid.uuid4(), kind=JobEventKind.PROGRESS, status="processing")
    publish_job_event(session, event)
    publish_job_event(session, event)
    assert queued_after_commit(session, events._publish_committed) == 2
