"""Moves a job between states through its named transitions (``lifecycle.transitions``): with
conditional UPDATEs, so two processes never both win a move, or on a row held under its lock.

A move that ends a job records its end in the same transaction: webhook deliveries, the batch's
count, the ``end`` event for waiting clients and the job metrics.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.metrics import record_job_finished
from core.models import Batch, Job, Segment
from core.states import JobStatus
from lifecycle.batches import count_finished_job
from lifecycle.deliveries import queue_job_deliveries
from lifecycle.events import publish_job_end
from lifecycle.transitions import JOB_CANCEL, JOB_FAIL, SEGMENT_CANCEL, Transition, is_terminal, move

__all__ = [
    "cancel_batch_jobs",
    "cancel_job",
    "cancel_segments",
    "fail_job",
    "mark_enqueued",
    "move_locked_job",
    "transition_job",
]

ERROR_MESSAGE_MAX = 2000


def transition_job(
    session: Session,
    *,
    job_id: uuid.UUID,
    transition: Transition[JobStatus],
    values: Mapping[str, Any] | None = None,
) -> bool:
    """UPDATE … SET status, ``values`` WHERE status IN the transition's sources; True when this
    call made the move. Does not commit."""
    columns = dict(values or {})
    if is_terminal(transition):
        columns.setdefault("finished_at", func.now())
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(transition.source_values))
        .values(status=transition.target_value, **columns)
        .execution_options(synchronize_session=False)
    )
    moved = bool(result.rowcount)  # type: ignore[attr-defined]
    if moved and is_terminal(transition):
        _record_job_end(session, job_id=job_id)
    return moved


def move_locked_job(session: Session, *, job: Job, transition: Transition[JobStatus]) -> None:
    """Moves a job whose row lock the caller holds (raises IllegalTransition from a source the
    transition does not allow). Does not commit."""
    move(job, transition)
    if is_terminal(transition):
        if job.finished_at is None:
            job.finished_at = datetime.now(UTC)
        _record_job_end(session, job_id=job.id)


def _record_job_end(session: Session, *, job_id: uuid.UUID) -> None:
    """What must commit together with a job's end: its webhook deliveries, its batch's count and
    its ``end`` event for waiting clients (sent after the commit). Every move to a terminal state
    calls it once, in the transaction that made the move."""
    for ended in queue_job_deliveries(session, job_ids=[job_id]):
        publish_job_end(session, job_id=ended.id, status=ended.status)
        if ended.batch_id is not None:
            count_finished_job(session, batch_id=ended.batch_id)
    _count_job_end(session, job_id=job_id)


def _count_job_end(session: Session, *, job_id: uuid.UUID) -> None:
    row = session.execute(
        select(Job.status, Job.verdict, Job.created_at).where(Job.id == job_id)
    ).one_or_none()
    if row is not None:
        record_job_finished(status=row.status, verdict=row.verdict, created_at=row.created_at)


def fail_job(session: Session, *, job_id: uuid.UUID, code: str, message: str) -> bool:
    """Marks an unfinished job failed with a typed error. Does not commit."""
    return transition_job(
        session,
        job_id=job_id,
        transition=JOB_FAIL,
        values={"error_code": code[:64], "error_message": message[:ERROR_MESSAGE_MAX]},
    )


def cancel_job(session: Session, *, job_id: uuid.UUID) -> bool:
    """Does not commit. Workers see the state and drop their work at their next checkpoint."""
    moved = transition_job(
        session,
        job_id=job_id,
        transition=JOB_CANCEL,
        values={"error_code": "canceled", "error_message": "canceled by the client"},
    )
    if moved:
        cancel_segments(session, job_ids=[job_id])
    return moved


def cancel_segments(session: Session, *, job_ids: list[uuid.UUID]) -> int:
    """Marks the unfinished (pending or running) segments of canceled jobs canceled, in the
    transaction that canceled them. A worker still running one finds its job canceled under the
    job's lock and drops its result; claims, releases and the reconciler only move pending or
    running segments, so a canceled one stays canceled. Does not commit."""
    if not job_ids:
        return 0
    result = session.execute(
        update(Segment)
        .where(
            Segment.job_id.in_(job_ids),
            Segment.status.in_(SEGMENT_CANCEL.source_values),
        )
        .values(status=SEGMENT_CANCEL.target_value, finished_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def cancel_batch_jobs(session: Session, *, batch_id: uuid.UUID) -> list[uuid.UUID]:
    """Cancels a batch: every unfinished job in one UPDATE, then the batch itself. The job locks
    are taken before the batch's, the order a worker finalizing a job uses, so the two never
    deadlock. Does not commit."""
    canceled = list(
        session.scalars(
            update(Job)
            .where(Job.batch_id == batch_id, Job.status.in_(JOB_CANCEL.source_values))
            .values(
                status=JOB_CANCEL.target_value,
                error_code="canceled",
                error_message="canceled with its batch",
                finished_at=func.now(),
            )
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        )
    )
    # Before the jobs are counted, so the count that ends the batch marks it canceled.
    session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.status == "running", Batch.canceled_at.is_(None))
        .values(canceled_at=func.now())
        .execution_options(synchronize_session=False)
    )
    cancel_segments(session, job_ids=canceled)
    for ended in queue_job_deliveries(session, job_ids=canceled):
        publish_job_end(session, job_id=ended.id, status=ended.status)
    count_finished_job(session, batch_id=batch_id, count=len(canceled))
    return canceled


def mark_enqueued(session: Session, *, job_id: uuid.UUID) -> None:
    """Records when a message was last sent for the job (the reconciler's clock). Does not commit."""
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(enqueued_at=func.now())
        .execution_options(synchronize_session=False)
    )
