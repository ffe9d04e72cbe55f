"""The reconciler: re-sends the messages the jobs table says are missing.

Jobs are the truth; Redis can lose messages (a flush, a restart without persistence, a publish that
failed). A marker key left in the broker tells a broker that lost its data from one whose queues
are merely long: when it is gone, every message in flight is sent again at once; otherwise only
those unsent, or stale for longer than the limits.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, select, update

from core.logs import log_event
from core.models import Job, Segment
from core.redis import broker_key, redis_client
from core.states import JobStatus, SegmentStatus
from worker.claims import Message, send_messages, stale_before
from worker.runtime import WorkerContext

__all__ = ["BROKER_MARKER_KEY", "check_broker", "reconcile"]

log = logging.getLogger(__name__)

RECONCILE_LOCK_ID = 724138  # pg advisory lock: one reconciler at a time across all workers
# Left in the broker by the reconciler; its absence means the broker lost its data.
BROKER_MARKER_KEY = "deepfakestream:broker-marker"
_RESEND_LOCK_KEY = "deepfakestream:resend-lock"
_RECONCILE_BATCH = 1000


def reconcile(ctx: WorkerContext) -> dict[str, int]:
    """One reconciler run (every few seconds, from beat); returns how many messages it sent."""
    counts = check_broker(ctx)
    return _reconcile_stale(ctx) if counts is None else counts


def check_broker(ctx: WorkerContext) -> dict[str, int] | None:
    """None when the broker holds the marker. Without it, sends again every message in flight and
    leaves the marker; returns how many were sent. A worker runs this as it becomes ready, before it
    takes any message: a fresh broker is marked before work starts, so the reconciler never takes
    that work for lost and sends it twice."""
    settings = ctx.settings
    client = redis_client(settings, connect_timeout_s=5, timeout_s=30)
    try:
        if client.exists(broker_key(settings, BROKER_MARKER_KEY)):
            return None
        # One re-send at a time across workers (it can take longer than the reconcile interval).
        if not client.set(broker_key(settings, _RESEND_LOCK_KEY), ctx.hostname, nx=True, ex=600):
            return {"skipped": 1}
        try:
            counts = _resend_in_flight(ctx)
            if "skipped" not in counts:
                client.set(broker_key(settings, BROKER_MARKER_KEY), datetime.now(UTC).isoformat())
        finally:
            client.delete(broker_key(settings, _RESEND_LOCK_KEY))
        return counts
    finally:
        client.close()


def _resend_in_flight(ctx: WorkerContext) -> dict[str, int]:
    """After the broker lost its data, sends again every message the jobs table has in flight:
    a probe per queued job, an analyze per pending segment, and the messages of claims (a job
    being probed, a segment running) under their own task ids. Tasks that were running when the
    broker went away were cancelled by their workers (they could not be acknowledged); the message
    sent again under the same id takes their claim over. Where one still runs (a flush with the
    workers connected), the work is done twice and stored once."""
    with ctx.session() as session, session.begin():
        if not session.scalar(select(func.pg_try_advisory_xact_lock(RECONCILE_LOCK_ID))):
            return {"skipped": 1}
        probes = [
            Message(
                job_id=row[0],
                priority=row[1],
                task_id=row[2] if row[3] == JobStatus.PROCESSING.value else None,
            )
            for row in session.execute(
                select(Job.id, Job.priority, Job.task_id, Job.status)
                .where(
                    or_(
                        Job.status == JobStatus.QUEUED.value,
                        and_(Job.status == JobStatus.PROCESSING.value, Job.plan.is_(None)),
                    )
                )
                .order_by(Job.priority, Job.created_at)
            )
        ]
        segments = [
            Message(
                job_id=row[0],
                segment_index=row[1],
                priority=row[2],
                task_id=row[3] if row[4] == SegmentStatus.RUNNING.value else None,
            )
            for row in session.execute(
                select(Segment.job_id, Segment.segment_index, Job.priority, Segment.task_id, Segment.status)
                .join(Job, Job.id == Segment.job_id)
                .where(
                    Job.status == JobStatus.PROCESSING.value,
                    Segment.status.in_([SegmentStatus.PENDING.value, SegmentStatus.RUNNING.value]),
                )
                .order_by(Job.priority, Segment.job_id, Segment.segment_index)
            )
        ]
        session.execute(
            update(Job)
            .where(Job.status.in_([JobStatus.QUEUED.value, JobStatus.PROCESSING.value]))
            .values(enqueued_at=func.now())
            .execution_options(synchronize_session=False)
        )
    send_messages(ctx, [*probes, *segments])
    counts = {"probes": len(probes), "segments": len(segments)}
    # A new broker (first start) has nothing in flight: only a loss that mattered is a warning.
    level = logging.WARNING if probes or segments else logging.INFO
    log_event(log, "reconcile.broker_lost", level=level, **counts)
    return counts


def _reconcile_stale(ctx: WorkerContext) -> dict[str, int]:
    """Sends again the probes of jobs queued too long (or never sent) and of probes whose claim is
    stale, and the analyze messages of segments pending too long or whose claim is stale."""
    settings = ctx.settings
    started = datetime.now(UTC)
    queued_cutoff = started - timedelta(seconds=settings.reconcile_queued_after_s)
    unsent_cutoff = started - timedelta(seconds=max(2 * settings.reconcile_interval_s, 30.0))
    stale_cutoff = stale_before(ctx)
    with ctx.session() as session, session.begin():
        if not session.scalar(select(func.pg_try_advisory_xact_lock(RECONCILE_LOCK_ID))):
            return {"skipped": 1}
        probes = [
            Message(job_id=row[0], priority=row[1])
            for row in session.execute(
                select(Job.id, Job.priority)
                .where(
                    or_(
                        and_(
                            Job.status == JobStatus.QUEUED.value,
                            or_(
                                and_(Job.enqueued_at.is_(None), Job.created_at < unsent_cutoff),
                                Job.enqueued_at < queued_cutoff,
                            ),
                        ),
                        and_(
                            Job.status == JobStatus.PROCESSING.value,
                            Job.plan.is_(None),
                            Job.claimed_at < stale_cutoff,
                            func.coalesce(Job.enqueued_at, Job.created_at) < stale_cutoff,
                        ),
                    )
                )
                .order_by(Job.created_at)
                .limit(_RECONCILE_BATCH)
            )
        ]
        segments = [
            Message(job_id=row[0], segment_index=row[1], priority=row[2])
            for row in session.execute(
                select(Segment.job_id, Segment.segment_index, Job.priority)
                .join(Job, Job.id == Segment.job_id)
                .where(
                    Job.status == JobStatus.PROCESSING.value,
                    or_(
                        and_(
                            Segment.status == SegmentStatus.RUNNING.value,
                            Segment.started_at < stale_cutoff,
                            func.coalesce(Job.enqueued_at, Job.created_at) < stale_cutoff,
                        ),
                        and_(
                            Segment.status == SegmentStatus.PENDING.value,
                            func.coalesce(Job.enqueued_at, Job.created_at) < queued_cutoff,
                        ),
                    ),
                )
                .order_by(Segment.job_id, Segment.segment_index)
                .limit(_RECONCILE_BATCH)
            )
        ]
        touched = {message.job_id for message in (*probes, *segments)}
        if touched:
            session.execute(
                update(Job)
                .where(Job.id.in_(touched))
                .values(enqueued_at=func.now())
                .execution_options(synchronize_session=False)
            )
    send_messages(ctx, [*probes, *segments])
    counts = {"probes": len(probes), "segments": len(segments)}
    if probes or segments:
        log_event(log, "reconcile.resent", **counts)
    return counts
