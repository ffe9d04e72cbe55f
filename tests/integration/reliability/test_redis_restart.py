"""Redis (the broker) restarted without persistence in the middle of a batch: every queued message
and every unacknowledged one is gone, yet no job is lost, because the jobs table is the truth: the
reconciler notices the broker lost its data and sends again every message in flight, at once
rather than once they look stale."""

from __future__ import annotations

import json
import secrets
import time
import uuid

import pytest
from sqlalchemy import select

from core.models import Job, Segment
from tests.integration.reliability.conftest import (
    batch_row,
    duplicate_rows,
    finalized_counts,
    put_sources,
)
from tests.utils.media import FaceVideo, make_face_video
from tests.utils.stack import FAULT_SETTINGS, PrivateStack
from tests.utils.waiting import wait_for

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
            during = stack.post_video(headers, short_clip.path)
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
    # Recovered because the reconciler saw the broker had lost its data, not by waiting for
    # messages to look stale.
    recovery = [
        json.loads(line)
        for line in stack.worker_logs()[log_offset:].splitlines()
        if '"reconcile.broker_lost"' in line
    ]
    assert recovery and recovery[0]["probes"] + recovery[0]["segments"] > 0, recovery


def test_task_running_when_redis_restarts_is_taken_over_at_once(
    fault_stack: PrivateStack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The worker cancels the task it could no longer acknowledge; the claim it left is taken over
    by the message sent again under the same task id, well before the claim would look stale."""
    stack = fault_stack
    headers = stack.new_key()
    video = make_face_video(
        tmp_path_factory.mktemp("redis-running") / "heavy.mp4", seconds=4.0, width=640, height=360, fps=25.0
    )
    job_id = uuid.UUID(stack.submit(headers, video.path, sample_fps="8", segment_seconds="1")["id"])

    def running() -> list[int]:
        with stack.session() as session:
            rows = session.scalars(
                select(Segment.segment_index).where(Segment.job_id == job_id, Segment.status == "running")
            )
            return list(rows)

    interrupted = wait_for(running, timeout_s=120, what="a segment to be running", interval_s=0.02)
    stack.redis.restart()
    restarted = time.monotonic()
    job = stack.wait_job(headers, str(job_id), timeout_s=120)
    recovered_in = time.monotonic() - restarted

    assert job["status"] == "succeeded", job
    stale_after = int(FAULT_SETTINGS["TASK_TIME_LIMIT_S"]) + 30
    assert recovered_in < stale_after, f"recovered after {recovered_in:.0f} s: by staleness, not at once"
    assert interrupted
    assert set(finalized_counts(stack, [job_id]).values()) == {1}
    assert duplicate_rows(stack, [job_id]) == {"frames": 0, "segments": 0, "tracks": 0}
