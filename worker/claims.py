"""Claims on jobs and segments: who may work on one now, attempts, failures and re-sent messages.

A message may take over a claim only when it is a redelivery of the message that made it (same
task id: its worker died) or when the claim is older than the hard time limit. A failure that
may pass releases the claim and asks for a retry after a backoff; any other is written to the job.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, exists, false, func, or_, select, update
from sqlalchemy.orm import Session

from core.logs import log_event
from core.models import Job, Segment
from core.queue import enqueue_analyze, enqueue_probe
from core.states import JobStatus, SegmentStatus
from lifecycle.jobs import fail_job
from lifecycle.transitions import JOB_REQUEUE, SEGMENT_CLAIM, SEGMENT_RELEASE
from worker.failures import RETRYABLE_ERRORS, FailureKind, classify
from worker.fetch import remove_job_copy
from worker.runtime import WorkerContext

__all__ = [
    "Message",
    "RetryLater",
    "claim_segment",
    "give_up",
    "handle_failure",
    "recover_node_claims",
    "send_messages",
    "stale_before",
]

log = logging.getLogger(__name__)

_STALE_MARGIN_S = 30.0


class RetryLater(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Another attempt may succeed: the task should be retried after ``countdown`` seconds."""

    def __init__(self, *, countdown: float, cause: BaseException) -> None:
        super().__init__(f"retry in {countdown:.0f}s after {type(cause).__name__}: {cause}")
        self.countdown = countdown
        self.cause = cause


def stale_before(ctx: WorkerContext) -> datetime:
    """A claim older than this cannot still be running: the hard time limit has killed it."""
    return datetime.now(UTC) - timedelta(seconds=ctx.settings.task_time_limit_s + _STALE_MARGIN_S)


def _backoff_s(ctx: WorkerContext, attempt: int) -> float:
    base = ctx.settings.retry_backoff_s * (2 ** max(attempt - 1, 0))
    # Redis re-delivers messages held past the visibility timeout, delayed ones included.
    cap = min(300.0, ctx.settings.broker_visibility_timeout_s / 2)
    return min(cap, base) * random.uniform(0.75, 1.25)


def claim_segment(
    ctx: WorkerContext, session: Session, *, job_id: uuid.UUID, segment_index: int, task_id: str | None
) -> int | None:
    """Claims a pending segment of a running job (or takes over a dead claim) with one conditional
    UPDATE; returns the attempt this is, or None when the segment is done, claimed or not wanted."""
    # A running segment is taken over only from a dead claim: its own message redelivered, or a
    # claim past the time limit.
    takeover = and_(
        Segment.status.in_(SEGMENT_CLAIM.source_values),
        or_(
            Segment.status == SegmentStatus.PENDING.value,
            Segment.task_id == task_id if task_id else false(),
            Segment.started_at < stale_before(ctx),
        ),
    )
    attempt: int | None = session.execute(
        update(Segment)
        .where(
            Segment.job_id == job_id,
            Segment.segment_index == segment_index,
            takeover,
            exists().where(Job.id == Segment.job_id, Job.status == JobStatus.PROCESSING.value),
        )
        .values(
            status=SEGMENT_CLAIM.target_value,
            attempts=Segment.attempts + 1,
            claimed_by=ctx.hostname,
            task_id=task_id,
            started_at=func.now(),
        )
        .returning(Segment.attempts)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return attempt


def give_up(session: Session, *, job_id: uuid.UUID, stage: str, what: str, attempts: int) -> str:
    """Fails the job whose ``what`` stopped the worker ``attempts`` times (a crash or the time
    limit each time): it would only stop it again."""
    fail_job(
        session,
        job_id=job_id,
        code="attempts_exhausted",
        message=f"{what} in {attempts} attempts (the worker stopped each time: crash or time limit)",
    )
    log_event(log, f"job.{stage}.failed", level=logging.WARNING, code="attempts_exhausted", attempt=attempts)
    return "failed"


def handle_failure(
    ctx: WorkerContext,
    *,
    job_id: uuid.UUID,
    exc: BaseException,
    attempt: int,
    segment_index: int | None = None,
) -> str:
    """Classifies ``exc``: a retryable failure before the last attempt releases the claim and raises
    RetryLater; any other fails the job and answers ``"failed"``."""
    failure = classify(exc)
    stage = "probe" if segment_index is None else "analyze"
    retry = failure.retryable and attempt < ctx.settings.max_attempts
    unexpected = failure.code == "internal_error"
    log_event(
        log,
        f"job.{stage}.failed",
        level=logging.ERROR if unexpected else logging.WARNING,
        code=failure.code,
        kind=failure.kind.value,
        retry=retry,
        detail=str(exc)[:500],
        exc_info=exc if unexpected or failure.kind is FailureKind.SYSTEM else None,
    )
    if retry:
        try:
            with ctx.session() as session, session.begin():
                _release(session, job_id=job_id, segment_index=segment_index)
        except RETRYABLE_ERRORS:
            pass  # the claim stays; the retried message takes it over (same task id)
        raise RetryLater(countdown=_backoff_s(ctx, attempt), cause=exc)
    with ctx.session() as session, session.begin():
        fail_job(session, job_id=job_id, code=failure.code, message=failure.message)
    remove_job_copy(job_id=job_id, settings=ctx.settings)
    return "failed"


def _release(session: Session, *, job_id: uuid.UUID, segment_index: int | None) -> None:
    """Puts a claim back (an unplanned job to queued, a segment to pending) for the retry."""
    if segment_index is None:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(JOB_REQUEUE.source_values), Job.plan.is_(None))
            .values(status=JOB_REQUEUE.target_value)
            .execution_options(synchronize_session=False)
        )
    else:
        session.execute(
            update(Segment)
            .where(
                Segment.job_id == job_id,
                Segment.segment_index == segment_index,
                Segment.status.in_(SEGMENT_RELEASE.source_values),
            )
            .values(status=SEGMENT_RELEASE.target_value)
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True)
class Message:
    """A job's probe (``segment_index`` None) or one segment's analyze message. ``task_id`` sends a
    lost message again under its own id, so the new one may take its claim over."""

    job_id: uuid.UUID
    priority: int
    segment_index: int | None = None
    task_id: str | None = None


def send_messages(ctx: WorkerContext, messages: Iterable[Message]) -> None:
    """Sends the messages in order; a broker error propagates (the reconciler covers the rest)."""
    timeout_s = ctx.settings.enqueue_timeout_s
    for message in messages:
        if message.segment_index is None:
            enqueue_probe(
                ctx.celery,
                job_id=message.job_id,
                timeout_s=timeout_s,
                priority=message.priority,
                task_id=message.task_id,
            )
        else:
            enqueue_analyze(
                ctx.celery,
                job_id=message.job_id,
                segment_index=message.segment_index,
                timeout_s=timeout_s,
                priority=message.priority,
                task_id=message.task_id,
            )


def recover_node_claims(ctx: WorkerContext, *, booted_at: datetime) -> dict[str, int]:
    """A worker node restarted under the same name: whatever it had claimed before ``booted_at``
    died with it. Put those claims back and re-send their messages now, rather than after the
    broker's visibility timeout."""
    with ctx.session() as session, session.begin():
        segments = [
            Message(job_id=row[0], segment_index=row[1], priority=row[2])
            for row in session.execute(
                update(Segment)
                .where(
                    Segment.claimed_by == ctx.hostname,
                    Segment.status.in_(SEGMENT_RELEASE.source_values),
                    Segment.started_at < booted_at,
                    exists().where(Job.id == Segment.job_id, Job.status == JobStatus.PROCESSING.value),
                )
                .values(status=SEGMENT_RELEASE.target_value)
                .returning(
                    Segment.job_id,
                    Segment.segment_index,
                    select(Job.priority).where(Job.id == Segment.job_id).scalar_subquery(),
                )
                .execution_options(synchronize_session=False)
            )
        ]
        probes = [
            Message(job_id=row[0], priority=row[1])
            for row in session.execute(
                update(Job)
                .where(
                    Job.claimed_by == ctx.hostname,
                    Job.status.in_(JOB_REQUEUE.source_values),
                    Job.plan.is_(None),
                    Job.claimed_at < booted_at,
                )
                .values(status=JOB_REQUEUE.target_value)
                .returning(Job.id, Job.priority)
                .execution_options(synchronize_session=False)
            )
        ]
    send_messages(ctx, [*probes, *segments])
    counts = {"probes": len(probes), "segments": len(segments)}
    if probes or segments:
        log_event(log, "worker.recovery.resent", node=ctx.hostname, **counts)
    return counts
