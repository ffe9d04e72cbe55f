"""Moves a job between states with conditional UPDATEs, so two processes never both win a move."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.metrics import record_job_finished
from core.models import Batch, Job, Segment
from core.states import ACTIVE_JOB_STATES, JobStatus, SegmentStatus, can_transition
from lifecycle.batches import count_finished_job
from lifecycle.deliveries import queue_job_deliveries
from lifecycle.events import publish_job_end

__all__ = [
    "cancel_batch_jobs",
    "cancel_job",
    "cancel_segments",
    "fail_job",
    "mark_enqueued",
    "record_job_end",
    "transition_job",
]

ERROR_MESSAGE_MAX = 2000


def transition_job(
    session: Session, *, job_id: uuid.UUID, from_states: Iterable[JobStatus], to: JobStatus, **values: Any
) -> bool:
    """UPDATE … WHERE status IN from_states; True when this call made the move. Does not commit."""
    sources = [state for state in from_states if can_transition(state, to)]
    if not sources:
        raise ValueError(f"no allowed move to {to} from {list(from_states)}")
    terminal = to in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)
    if terminal:
        values.setdefault("finished_at", func.now())
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_([s.value for s in sources]))
        .values(status=to.value, **values)
        .execution_options(synchronize_session=False)
    )
    moved = bool(result.rowcount)  # type: ignore[attr-defined]
    if moved and terminal:
        record_job_end(session, job_id=job_id)
    return moved


def record_job_end(session: Session, *, job_id: uuid.UUID) -> None:
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
        from_states=ACTIVE_JOB_STATES,
        to=JobStatus.FAILED,
        error_code=code[:64],
        error_message=message[:ERROR_MESSAGE_MAX],
    )


def cancel_job(session: Session, *, job_id: uuid.UUID) -> bool:
    """Does not commit. Workers see the state and drop their work at their next checkpoint."""
    moved = transition_job(
        session,
        job_id=job_id,
        from_states=ACTIVE_JOB_STATES,
        to=JobStatus.CANCELED,
        error_code="canceled",
        error_message="canceled by the client",
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
            Segment.status.in_([SegmentStatus.PENDING.value, SegmentStatus.RUNNING.value]),
        )
        .values(status=SegmentStatus.CANCELED.value, finished_at=func.now())
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
            .where(Job.batch_id == batch_id, Job.status.in_([s.value for s in ACTIVE_JOB_STATES]))
            .values(
                status=JobStatus.CANCELED.value,
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
