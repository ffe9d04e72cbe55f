"""Canceling a job ends its unfinished segments, and no worker brings one back (real PostgreSQL)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import cast

import pytest
from sqlalchemy import select

from core.config import Settings
from core.keys import create_api_key
from core.models import Batch, Job, Segment, Video
from lifecycle.jobs import cancel_batch_jobs, cancel_job
from pipeline.analyzer import Analyzer
from pipeline.types import SegmentResult
from tests.utils.platform import isolated_settings
from worker.analyze import _store_segment
from worker.claims import _release, claim_segment
from worker.runtime import WorkerContext, build_context

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with isolated_settings("cancel", tmp_path_factory.mktemp) as settings:
        yield settings


@pytest.fixture(scope="module")
def ctx(settings: Settings) -> WorkerContext:
    return build_context(settings, hostname="cancel@test")


def _planned_job(ctx: WorkerContext, *, batch: bool = False) -> tuple[uuid.UUID, uuid.UUID | None]:
    """A processing job of three segments: done, running (claimed by a worker) and pending."""
    with ctx.session() as session:
        tenant_id = create_api_key(session, tenant_name=f"t-{secrets.token_hex(4)}").tenant.id
        batch_row = Batch(tenant_id=tenant_id, jobs_total=1) if batch else None
        if batch_row is not None:
            session.add(batch_row)
            session.flush()
        video_id = uuid.uuid4()
        job = Job(
            tenant_id=tenant_id,
            video=Video(id=video_id, tenant_id=tenant_id, storage_key=f"v/{video_id}", owned=True),
            status="processing",
            segments_total=3,
            batch_id=batch_row.id if batch_row is not None else None,
        )
        session.add(job)
        session.flush()
        for index, status in enumerate(("done", "running", "pending")):
            session.add(
                Segment(job_id=job.id, segment_index=index, start_s=index, end_s=index + 1.0, status=status)
            )
        session.commit()
        return job.id, batch_row.id if batch_row is not None else None


def _statuses(ctx: WorkerContext, job_id: uuid.UUID) -> list[str]:
    with ctx.session() as session:
        return list(
            session.scalars(
                select(Segment.status).where(Segment.job_id == job_id).order_by(Segment.segment_index)
            )
        )


def test_cancel_marks_unfinished_segments_canceled(ctx: WorkerContext) -> None:
    job_id, _ = _planned_job(ctx)
    with ctx.session() as session, session.begin():
        assert cancel_job(session, job_id=job_id)

    assert _statuses(ctx, job_id) == ["done", "canceled", "canceled"]
    with ctx.session() as session:
        finished = session.scalars(select(Segment.finished_at).where(Segment.job_id == job_id)).all()
    assert all(at is not None for at in finished[1:])


def test_batch_cancel_marks_unfinished_segments_canceled(ctx: WorkerContext) -> None:
    job_id, batch_id = _planned_job(ctx, batch=True)
    assert batch_id is not None
    with ctx.session() as session, session.begin():
        assert cancel_batch_jobs(session, batch_id=batch_id) == [job_id]

    assert _statuses(ctx, job_id) == ["done", "canceled", "canceled"]


def test_a_worker_finishing_a_canceled_segment_does_not_revive_it(ctx: WorkerContext) -> None:
    job_id, _ = _planned_job(ctx)
    with ctx.session() as session, session.begin():
        cancel_job(session, job_id=job_id)

    # The worker that held segment 1 stores its result, or fails and puts its claim back; a
    # re-sent message for segment 2 tries to claim it.
    result = SegmentResult(index=1, start_s=1.0, end_s=2.0, score=0.5, frames=[], tracks=[])
    analyzer = cast(Analyzer, None)
    assert _store_segment(ctx, job_id=job_id, result=result, analyzer=analyzer, uploaded=[]) == "dropped"
    with ctx.session() as session, session.begin():
        _release(session, job_id=job_id, segment_index=1)
        assert claim_segment(ctx, session, job_id=job_id, segment_index=2, task_id=None) is None

    assert _statuses(ctx, job_id) == ["done", "canceled", "canceled"]
    with ctx.session() as session:
        job = session.get_one(Job, job_id)
        assert (job.status, job.segments_done) == ("canceled", 0)
