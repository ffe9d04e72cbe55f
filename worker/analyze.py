"""The analyze stage: one segment through the pipeline and its results stored.

Frames, input statistics and explanations are written under the job's row lock after checking
that the job still wants them, so a segment whose job ended meanwhile leaves nothing behind, and
one stored twice is stored once. The last segment to finish finalizes the job.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from core import metrics
from core.logs import log_context, log_event
from core.models import Job, Segment
from core.states import JobStatus, SegmentStatus
from lifecycle.events import JobEvent, JobEventKind, publish_job_event
from lifecycle.transitions import SEGMENT_COMPLETE, move
from pipeline.media_source import media_source_for
from worker.claims import claim_segment, give_up, handle_failure
from worker.fetch import local_video, remove_job_copy
from worker.finalize import after_finalize, finalize_job
from worker.results import (
    discard_uploads,
    frame_rows,
    store_explanations,
    store_frames,
    upload_explanations,
    video_info,
)
from worker.runtime import WorkerContext

if TYPE_CHECKING:
    from pipeline.analyzer import Analyzer
    from pipeline.types import SegmentResult

__all__ = ["analyze_segment"]

log = logging.getLogger(__name__)


def analyze_segment(
    ctx: WorkerContext, *, job_id: uuid.UUID, segment_index: int, task_id: str | None = None
) -> str:
    """Analyse one segment and store its frames; the last segment to finish finalizes the job."""
    with log_context(job_id=str(job_id), segment=segment_index, task="analyze"):
        return _analyze_segment(ctx, job_id=job_id, segment_index=segment_index, task_id=task_id)


def _analyze_segment(
    ctx: WorkerContext, *, job_id: uuid.UUID, segment_index: int, task_id: str | None
) -> str:
    from pipeline.types import SegmentPlan

    with ctx.session() as session, session.begin():
        attempt = claim_segment(ctx, session, job_id=job_id, segment_index=segment_index, task_id=task_id)
        if attempt is None:
            log_event(log, "job.analyze.skipped", reason="segment done, claimed, or job not running")
            return "skipped"
        if attempt > ctx.settings.max_attempts:
            return give_up(
                session,
                job_id=job_id,
                stage="analyze",
                what=f"segment {segment_index} could not be analysed",
                attempts=attempt - 1,
            )
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(attempts=func.greatest(Job.attempts, attempt))
            .execution_options(synchronize_session=False)
        )
        job = session.scalar(select(Job).where(Job.id == job_id))
        assert job is not None and job.plan is not None
        metrics.record_queue_wait(queue="analyze", sent_at=job.enqueued_at)
        plan = SegmentPlan.from_dict(job.plan[segment_index])
        options = dict(job.options or {})
        video = job.video

    with log_context(attempt=attempt):
        log_event(log, "job.analyze.started", frames_planned=len(plan.frame_times))
        try:
            analyzer = ctx.analyzer_for(options)
            path = local_video(job_id=job_id, video=video, storage=ctx.storage, settings=ctx.settings)
            result = analyzer.analyze_segment(media_source_for(path, video_info(video)), plan)
            uploading = time.perf_counter()
            uploaded = upload_explanations(ctx.storage, video=video, result=result)
            metrics.record_stage("upload", time.perf_counter() - uploading)
        except Exception as exc:  # classified: only curated errors are retried
            return handle_failure(ctx, job_id=job_id, exc=exc, attempt=attempt, segment_index=segment_index)
        return _store_segment(ctx, job_id=job_id, result=result, analyzer=analyzer, uploaded=uploaded)


def _store_segment(
    ctx: WorkerContext,
    *,
    job_id: uuid.UUID,
    result: SegmentResult,
    analyzer: Analyzer,
    uploaded: list[dict[str, Any]],
) -> str:
    with ctx.session() as session, session.begin():
        # Every writer of this job's results takes this lock first: segments finishing together
        # are serialized, so exactly one of them sees the last one done and finalizes.
        job = session.scalar(select(Job).where(Job.id == job_id).with_for_update(of=Job))
        if job is None or job.status != JobStatus.PROCESSING.value:
            log_event(
                log, "job.analyze.dropped", reason="job deleted" if job is None else f"job {job.status}"
            )
            remove_job_copy(job_id=job_id, settings=ctx.settings)
            # No row will point at this segment's heatmaps: do not leave them in storage.
            discard_uploads(ctx.storage, uploaded)
            return "dropped"
        segment = session.scalar(
            select(Segment).where(Segment.job_id == job_id, Segment.segment_index == result.index)
        )
        if segment is None or not SEGMENT_COMPLETE.allows(segment.status):
            log_event(log, "job.analyze.dropped", reason="segment already stored")
            return "dropped"
        rows = frame_rows(job_id, result)
        store_frames(session, rows)
        move(segment, SEGMENT_COMPLETE)
        segment.score = result.score
        segment.frame_count = len(rows)
        segment.face_count = result.face_count
        segment.tracks = [track.to_dict() for track in result.tracks]
        segment.timings = {key: round(float(value), 4) for key, value in result.timings.items()}
        segment.finished_at = datetime.now(UTC)
        segment.quality = result.quality
        if result.small_faces is not None:
            # Kept with the segment's input statistics: finalize reads it back to say why no face
            # was scored.
            segment.quality = {**(result.quality or {}), "small_faces": result.small_faces.to_dict()}
        store_explanations(session, job_id=job_id, uploaded=uploaded)
        session.flush()
        done = (
            session.scalar(
                select(func.count())
                .select_from(Segment)
                .where(Segment.job_id == job_id, Segment.status == SegmentStatus.DONE.value)
            )
            or 0
        )
        job.segments_done = done
        publish_job_event(
            session,
            JobEvent(
                job_id=job_id,
                kind=JobEventKind.PROGRESS,
                status=job.status,
                segments_done=done,
                segments_total=job.segments_total,
                segment_index=result.index,
            ),
        )
        finished = done >= (job.segments_total or 0)
        if finished:
            finalize_job(session, job=job, analyzer=analyzer)
    log_event(
        log,
        "job.analyze.succeeded",
        frames=len(rows),
        faces=result.face_count,
        timings={key: round(float(value), 3) for key, value in result.timings.items()},
    )
    metrics.record_segment(timings=result.timings, frames=len(rows), faces=result.face_count)
    if finished:
        return after_finalize(ctx, job_id=job_id)
    return "stored"
