"""The probe stage: ffprobe the job's video, validate it, plan its segments, send their messages.

A video with nothing to analyse is finalized here. The job is claimed under its row lock; a
redelivery of the message that planned it (its worker died while sending) sends the segments still
pending, and any other message for a claimed job is skipped.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from core import metrics
from core.logs import log_context, log_event
from core.models import Job, Segment
from core.states import JobStatus, SegmentStatus
from lifecycle.events import JobEvent, JobEventKind, publish_job_event
from lifecycle.jobs import mark_enqueued, move_locked_job
from lifecycle.transitions import JOB_CLAIM
from pipeline.checkpoint import file_sha256
from worker.claims import Message, give_up, handle_failure, send_messages, stale_before
from worker.fetch import local_video, remove_job_copy
from worker.finalize import after_finalize, finalize_job
from worker.results import store_video_info
from worker.runtime import WorkerContext

__all__ = ["probe_job"]

log = logging.getLogger(__name__)


def probe_job(ctx: WorkerContext, *, job_id: uuid.UUID, task_id: str | None = None) -> str:
    """ffprobe the video, validate it, plan its segments and send one analyze message per segment."""
    with log_context(job_id=str(job_id), task="probe"):
        return _probe_job(ctx, job_id=job_id, task_id=task_id)


def _probe_job(ctx: WorkerContext, *, job_id: uuid.UUID, task_id: str | None) -> str:
    settings = ctx.settings
    resend: list[int] | None = None
    with ctx.session() as session, session.begin():
        job = session.scalar(select(Job).where(Job.id == job_id).with_for_update(of=Job))
        if job is None:
            log_event(log, "job.probe.skipped", reason="deleted")
            return "skipped"
        priority = job.priority
        status = JobStatus(job.status)
        redelivered = task_id is not None and job.task_id == task_id
        stale = job.claimed_at is not None and job.claimed_at < stale_before(ctx)
        if status is JobStatus.PROCESSING and job.plan is not None:
            if not redelivered:
                log_event(log, "job.probe.skipped", reason="already planned")
                return "skipped"
            # The worker that planned died before sending every segment: send the rest.
            resend = list(
                session.scalars(
                    select(Segment.segment_index).where(
                        Segment.job_id == job_id, Segment.status == SegmentStatus.PENDING.value
                    )
                )
            )
        elif status is JobStatus.PROCESSING and not (redelivered or stale):
            log_event(log, "job.probe.skipped", reason="claimed by another delivery")
            return "skipped"
        elif not JOB_CLAIM.allows(status):
            log_event(log, "job.probe.skipped", reason=f"job {status}")
            return "skipped"
        else:
            attempt = job.attempts + 1
            if attempt > settings.max_attempts:
                return give_up(
                    session,
                    job_id=job_id,
                    stage="probe",
                    what="the video could not be probed",
                    attempts=job.attempts,
                )
            metrics.record_queue_wait(queue="probe", sent_at=job.enqueued_at or job.created_at)
            move_locked_job(session, job=job, transition=JOB_CLAIM)
            job.attempts = attempt
            job.claimed_by = ctx.hostname
            job.task_id = task_id
            job.claimed_at = datetime.now(UTC)
            job.started_at = job.started_at or datetime.now(UTC)
            publish_job_event(session, JobEvent(job_id=job_id, kind=JobEventKind.STATUS, status=job.status))
            options = dict(job.options or {})
            video = job.video
    if resend is not None:
        if resend:
            _send_segments(ctx, job_id=job_id, indexes=resend, priority=priority)
        log_event(log, "job.probe.resent", segments=len(resend))
        return "resent"

    with log_context(attempt=attempt):
        log_event(log, "job.probe.started")
        started = time.perf_counter()
        try:
            analyzer = ctx.analyzer_for(options)
            path = local_video(
                job_id=job_id, video=video, storage=ctx.storage, settings=settings, check_hash=True
            )
            source = analyzer.open(path)
            info = source.info
            plans = analyzer.plan(source)
            # Uploads streamed through the API were hashed on the way in; bucket objects, https
            # sources and direct uploads are hashed here, so every report can name its input.
            digest = file_sha256(path) if video.sha256 is None else None
        except Exception as exc:  # classified: only curated errors are retried
            return handle_failure(ctx, job_id=job_id, exc=exc, attempt=attempt)
        probe_s = time.perf_counter() - started
        metrics.record_stage("probe", probe_s)

        with ctx.session() as session, session.begin():
            job = session.scalar(select(Job).where(Job.id == job_id).with_for_update(of=Job))
            if job is None or job.status != JobStatus.PROCESSING.value or job.plan is not None:
                log_event(log, "job.probe.dropped", reason="job changed while probing")
                ended = job is None or job.status != JobStatus.PROCESSING.value
                if ended:
                    remove_job_copy(job_id=job_id, settings=settings)
                return "dropped"
            store_video_info(job.video, info)
            if digest is not None and job.video.sha256 is None:
                job.video.sha256 = digest
            if job.video.size_bytes is None:
                job.video.size_bytes = info.size_bytes or None
            job.media_type = info.media_type
            job.plan = [plan.to_dict() for plan in plans]
            job.segments_total = len(plans)
            job.segments_done = 0
            job.timings = {"probe_s": round(probe_s, 4)}
            publish_job_event(
                session,
                JobEvent(
                    job_id=job_id,
                    kind=JobEventKind.STATUS,
                    status=job.status,
                    segments_done=0,
                    segments_total=len(plans),
                ),
            )
            if plans:
                session.execute(
                    insert(Segment)
                    .values(
                        [
                            {
                                "job_id": job_id,
                                "segment_index": p.index,
                                "start_s": p.start_s,
                                "end_s": p.end_s,
                                "status": SegmentStatus.PENDING.value,
                            }
                            for p in plans
                        ]
                    )
                    .on_conflict_do_nothing(constraint="uq_segments_job_id_segment_index")
                )
            else:
                finalize_job(session, job=job, analyzer=analyzer)
        log_event(
            log,
            "job.probe.succeeded",
            segments=len(plans),
            duration_s=round(info.duration_s, 3),
            width=info.width,
            height=info.height,
            probe_s=round(probe_s, 3),
        )
        if not plans:
            return after_finalize(ctx, job_id=job_id)
        _send_segments(ctx, job_id=job_id, indexes=[p.index for p in plans], priority=priority)
        return "planned"


def _send_segments(ctx: WorkerContext, *, job_id: uuid.UUID, indexes: list[int], priority: int) -> None:
    send_messages(ctx, [Message(job_id=job_id, segment_index=index, priority=priority) for index in indexes])
    with ctx.session() as session, session.begin():
        mark_enqueued(session, job_id=job_id)
