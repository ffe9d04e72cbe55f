"""Batches: their states, the per-state counts of their jobs, and the bookkeeping as jobs end.

The bookkeeping runs in the transaction that ends one of their jobs: the last one completes the
batch and queues its event.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.models import Batch, Job
from core.states import JobStatus
from lifecycle.deliveries import queue_batch_deliveries
from lifecycle.transitions import Transition, move

__all__ = [
    "BATCH_COMPLETE",
    "BATCH_END_CANCELED",
    "BATCH_TRANSITIONS",
    "BatchStatus",
    "count_finished_job",
    "job_counts",
]


class BatchStatus(StrEnum):
    RUNNING = "running"  # some of its jobs have not ended
    COMPLETED = "completed"  # every job ended (succeeded, failed or canceled one by one)
    CANCELED = "canceled"  # every job ended after the batch was canceled


# The last of its jobs ended: the batch's end, by whether it had been canceled.
BATCH_COMPLETE = Transition("complete", frozenset({BatchStatus.RUNNING}), BatchStatus.COMPLETED)
BATCH_END_CANCELED = Transition("end_canceled", frozenset({BatchStatus.RUNNING}), BatchStatus.CANCELED)
BATCH_TRANSITIONS = {transition.name: transition for transition in (BATCH_COMPLETE, BATCH_END_CANCELED)}


def job_counts(session: Session, *, batch_id: uuid.UUID) -> dict[str, int]:
    """Jobs of the batch by status, every status present (zeros included)."""
    counts = {status.value: 0 for status in JobStatus}
    for status, count in session.execute(
        select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status)
    ):
        counts[status] = int(count)
    return counts


def count_finished_job(session: Session, *, batch_id: uuid.UUID, count: int = 1) -> bool:
    """Counts ``count`` more ended jobs of the batch; the call that counts the last one marks the
    batch ended and queues ``batch.completed``. True when this call completed the batch. Does not
    commit.

    The counter UPDATE takes the batch's row lock, so jobs ending at the same moment are counted
    one after the other and exactly one of them sees the total reached.
    """
    if count < 1:
        return False
    row = session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.jobs_finished + count <= Batch.jobs_total)
        .values(jobs_finished=Batch.jobs_finished + count)
        .returning(Batch.jobs_finished, Batch.jobs_total)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if row is None or row.jobs_finished < row.jobs_total:
        return False
    batch = session.scalar(
        select(Batch).where(Batch.id == batch_id).execution_options(populate_existing=True)
    )
    assert batch is not None
    move(batch, BATCH_END_CANCELED if batch.canceled_at is not None else BATCH_COMPLETE)
    batch.completed_at = datetime.now(UTC)
    session.flush()
    queue_batch_deliveries(session, batch=batch, counts=job_counts(session, batch_id=batch_id))
    return True
