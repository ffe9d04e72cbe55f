"""A message sent again for a segment that is already claimed or done (at-least-once delivery: the
reconciler after a broker lost its data, a probe redelivered after planning) is skipped by the
claim and changes nothing stored (real PostgreSQL and Redis)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from core.config import Settings
from core.keys import create_api_key
from core.models import Job, Segment, Video
from tests.utils.platform import isolated_settings
from worker.analyze import analyze_segment
from worker.claims import claim_segment
from worker.runtime import WorkerContext, build_context

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with isolated_settings("resent", tmp_path_factory.mktemp) as settings:
        yield settings


@pytest.fixture(scope="module")
def ctx(settings: Settings) -> WorkerContext:
    return build_context(settings, hostname="resent@test")


def _job_with_done_and_running_segments(ctx: WorkerContext) -> uuid.UUID:
    """A processing job: segment 0 done, segment 1 claimed by the task ``first``."""
    with ctx.session() as session:
        tenant_id = create_api_key(session, tenant_name=f"t-{secrets.token_hex(4)}").tenant.id
        video_id = uuid.uuid4()
        job = Job(
            tenant_id=tenant_id,
            video=Video(id=video_id, tenant_id=tenant_id, storage_key=f"v/{video_id}", owned=True),
            status="processing",
            segments_total=2,
            segments_done=1,
            attempts=1,
        )
        session.add(job)
        session.flush()
        session.add(
            Segment(job_id=job.id, segment_index=0, start_s=0.0, end_s=1.0, status="done", score=0.25)
        )
        session.add(Segment(job_id=job.id, segment_index=1, start_s=1.0, end_s=2.0, status="pending"))
        session.commit()
        job_id = job.id
    with ctx.session() as session, session.begin():
        assert claim_segment(ctx, session, job_id=job_id, segment_index=1, task_id="first") == 1
    return job_id


def _stored(ctx: WorkerContext, job_id: uuid.UUID) -> dict[str, Any]:
    with ctx.session() as session:
        job = session.get_one(Job, job_id)
        segments = session.scalars(
            select(Segment).where(Segment.job_id == job_id).order_by(Segment.segment_index)
        ).all()
        return {
            "job": (job.status, job.attempts, job.segments_done),
            "segments": [
                (s.status, s.attempts, s.claimed_by, s.task_id, s.started_at, s.score, s.finished_at)
                for s in segments
            ],
        }


@pytest.mark.parametrize("task_id", [None, "copy"], ids=["no-task-id", "another-task-id"])
def test_a_resent_message_for_a_claimed_or_done_segment_is_skipped(
    ctx: WorkerContext, task_id: str | None
) -> None:
    job_id = _job_with_done_and_running_segments(ctx)
    before = _stored(ctx, job_id)
    assert [segment[0] for segment in before["segments"]] == ["done", "running"]

    for index in (0, 1):
        assert analyze_segment(ctx, job_id=job_id, segment_index=index, task_id=task_id) == "skipped"

    assert _stored(ctx, job_id) == before
