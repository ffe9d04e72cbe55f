"""Redis (the broker) restarted without persistence in the middle of a batch: every queued message
and every unacknowledged one is gone, yet no job is lost, because the jobs table is the truth and
the reconciler sends again whatever it says is missing."""

from __future__ import annotations

import secrets
import time
import uuid

import pytest
from sqlalchemy import select

from core.models import Job
from tests.integration.reliability.conftest import (
    batch_row,
    duplicate_rows,
    finalized_counts,
    put_sources,
)
from tests.utils.media import FaceVideo
from tests.utils.platform import wait_for
from tests.utils.services import PrivateStack

pytestmark = pytest.mark.integration

BATCH_ITEMS = 12


def _statuses(stack: PrivateStack, batch_id: uuid.UUID) -> dict[uuid.UUID, str]:
    with stack.session() as session:
        rows = session.execute(select(Job.id, Job.status).where(Job.batch_id == batch_id))
        return {row[0]: row[1] for row in rows}


def test_redis_restarted_mid_batch_loses_no_job(fault_stack: PrivateStack, short_clip: FaceVideo) -> None:
    stack = fault_stack
    headers = stack.new_key()
    sources = put_sources(stack, short_clip, BATCH_ITEMS, prefix=f"redis-{secrets.token_hex(3)}")
    with stack.client(headers) as client:
        created = client.post(
            "/v1/batches",
            json={"items": [{"source": uri, "external_id": f"item-{i}"} for i, uri in enumerate(sources)]},
        )
        assert created.status_code == 202, created.text
        batch_id = uuid.UUID(created.json()["id"])

        def some_done() -> bool:
            statuses = list(_statuses(stack, batch_id).values())
            return statuses.count("succeeded") >= 2

        wait_for(some_done, timeout_s=180, what="the first items of the batch to finish", interval_s=0.2)
        before = _statuses(stack, batch_id)
        assert list(before.values()).count("succeeded") < BATCH_ITEMS, "the batch ended before the restart"
        log_offset = len(stack.worker_logs())

        # Down for a few seconds: a job submitted meanwhile is stored and answered 202 all the
        # same (its message is sent once the broker is back), and reads keep working.
        stack.redis.stop()
        try:
            during = stack.submit(headers, short_clip.path, expect=None)
            progress = client.get(f"/v1/batches/{batch_id}")
            time.sleep(3)
        finally:
            stack.redis.start()
        assert during.status_code == 202, during.text
        assert progress.status_code == 200, progress.text
        interactive_id = during.json()["id"]

        wait_for(
            lambda: client.get(f"/v1/batches/{batch_id}").json()["status"] == "completed",
            timeout_s=300,
            what="the batch to complete after the broker restart",
            interval_s=1.0,
        )
        summary = client.get(f"/v1/batches/{batch_id}").json()
    interactive = stack.wait_job(headers, interactive_id, timeout_s=120)

    after = _statuses(stack, batch_id)
    assert len(after) == BATCH_ITEMS
    assert set(after.values()) == {"succeeded"}, after
    assert summary["counts"]["succeeded"] == BATCH_ITEMS and summary["jobs_finished"] == BATCH_ITEMS
    assert batch_row(stack, batch_id).jobs_finished == BATCH_ITEMS  # each job counted exactly once
    assert interactive["status"] == "succeeded", interactive
    every_job = [*after, uuid.UUID(interactive_id)]
    assert set(finalized_counts(stack, every_job).values()) == {1}
    assert duplicate_rows(stack, every_job) == {"frames": 0, "segments": 0, "tracks": 0}
    assert "reconcile.resent" in stack.worker_logs()[log_offset:]
