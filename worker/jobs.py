"""The work behind the tasks, as plain functions tests can call without Celery: probe a job,
analyse one segment (the last one to finish finalizes the job), reconcile lost messages and
recover a restarted worker's claims.

Every function is safe to run twice for the same message. Claims are conditional UPDATEs; a
message may take over a claim only when it is a redelivery of the message that made it (same
task id: its worker died) or when the claim is older than the hard time limit; results are
written under the job's row lock, after checking the job still wants them.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, and_, bindparam, exists, false, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core import metrics
from core.config import Settings
from core.jobs import fail_job, mark_enqueued, record_job_end
from core.logs import log_context, log_event
from core.models import Frame, Job, Segment, Track, Video
from core.queue import enqueue_analyze, enqueue_probe
from core.states import JobStatus, SegmentStatus
from worker.failures import RETRYABLE_ERRORS, FailureKind, classify
from worker.fetch import local_video, remove_job_copy
from worker.monitoring import (
    discard_uploads,
    finalize_outputs,
    store_segment_outputs,
    upload_explanations,
    write_statistics_document,
)
from worker.runtime import WorkerContext

if TYPE_CHECKING:
    from pipeline.analyzer import Analyzer
    from pipeline.types import SegmentResult, VideoInfo

__all__ = [
    "RetryLater",
    "analyze_segment",
    "probe_job",
    "reconcile",
    "recover_node_claims",
]

log = logging.getLogger(__name__)

RECONCILE_LOCK_ID = 724138  # pg advisory lock: one reconciler at a time across all workers
# Left in the broker by the reconciler; its absence means the broker lost its data.
BROKER_MARKER_KEY = "deepfakestream:broker-marker"
_RESEND_LOCK_KEY = "deepfakestream:resend-lock"
_RECONCILE_BATCH = 1000
_STALE_MARGIN_S = 30.0


class RetryLater(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Another attempt may succeed: the task should be retried after ``countdown`` seconds."""

    def __init__(self, *, countdown: float, cause: BaseException) -> None:
        super().__init__(f"retry in {countdown:.0f}s after {type(cause).__name__}: {cause}")
        self.countdown = countdown
        self.cause = cause


def _now() -> datetime:
    return datetime.now(UTC)


def _stale_before(ctx: WorkerContext) -> datetime:
    """A claim older than this cannot still be running: the hard time limit has killed it."""
    return _now() - timedelta(seconds=ctx.settings.task_time_limit_s + _STALE_MARGIN_S)


def _backoff_s(ctx: WorkerContext, attempt: int) -> float:
    base = ctx.settings.retry_backoff_s * (2 ** max(attempt - 1, 0))
    # Redis re-delivers messages held past the visibility timeout, delayed ones included.
    cap = min(300.0, ctx.settings.broker_visibility_timeout_s / 2)
    return min(cap, base) * random.uniform(0.75, 1.25)


def _video_info(video: Video) -> VideoInfo:
    from pipeline.types import VideoInfo

    assert video.info is not None
    return VideoInfo(**video.info)


# --- probe -------------------------------------------------------------------------------------


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
        stale = job.claimed_at is not None and job.claimed_at < _stale_before(ctx)
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
        elif status not in (JobStatus.QUEUED, JobStatus.PROCESSING):
            log_event(log, "job.probe.skipped", reason=f"job {status}")
            return "skipped"
        else:
            attempt = job.attempts + 1
            if attempt > settings.max_attempts:
                fail_job(
                    session,
                    job_id=job_id,
                    code="attempts_exhausted",
                    message=f"the video could not be probed in {job.attempts} attempts "
                    "(the worker stopped each time: crash or time limit)",
                )
                log_event(
                    log,
                    "job.probe.failed",
                    level=logging.WARNING,
                    code="attempts_exhausted",
                    attempt=job.attempts,
                )
                return "failed"
            metrics.record_queue_wait(queue="probe", sent_at=job.enqueued_at or job.created_at)
            job.status = JobStatus.PROCESSING.value
            job.attempts = attempt
            job.claimed_by = ctx.hostname
            job.task_id = task_id
            job.claimed_at = _now()
            job.started_at = job.started_at or _now()
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
            path = local_video(job_id=job_id, video=video, storage=ctx.storage, settings=settings)
            info = analyzer.probe(path)
            plans = analyzer.plan(info)
        except Exception as exc:  # classified: only curated errors are retried
            return _handle_failure(ctx, job_id=job_id, exc=exc, attempt=attempt)
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
            _store_video_info(job.video, info)
            job.plan = [plan.to_dict() for plan in plans]
            job.segments_total = len(plans)
            job.segments_done = 0
            job.timings = {"probe_s": round(probe_s, 4)}
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
                _finalize_locked(session, job=job, analyzer=analyzer)
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
            write_statistics_document(ctx.session_factory, ctx.storage, job_id=job_id)
            remove_job_copy(job_id=job_id, settings=settings)
            return "finalized"
        _send_segments(ctx, job_id=job_id, indexes=[p.index for p in plans], priority=priority)
        return "planned"


def _store_video_info(video: Video, info: VideoInfo) -> None:
    video.duration_s = info.duration_s
    video.fps = info.fps
    video.width = info.width
    video.height = info.height
    video.codec = info.codec[:64]
    video.format_name = info.format_name[:128]
    video.info = info.to_dict()


def _send_segments(ctx: WorkerContext, *, job_id: uuid.UUID, indexes: list[int], priority: int) -> None:
    for index in indexes:
        enqueue_analyze(
            ctx.celery,
            job_id=job_id,
            segment_index=index,
            timeout_s=ctx.settings.enqueue_timeout_s,
            priority=priority,
        )
    with ctx.session() as session, session.begin():
        mark_enqueued(session, job_id=job_id)


# --- analyze -----------------------------------------------------------------------------------


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

    settings = ctx.settings
    with ctx.session() as session, session.begin():
        takeover = or_(
            Segment.status == SegmentStatus.PENDING.value,
            and_(
                Segment.status == SegmentStatus.RUNNING.value,
                or_(
                    Segment.task_id == task_id if task_id else false(),
                    Segment.started_at < _stale_before(ctx),
                ),
            ),
        )
        attempt = session.execute(
            update(Segment)
            .where(
                Segment.job_id == job_id,
                Segment.segment_index == segment_index,
                takeover,
                exists().where(Job.id == Segment.job_id, Job.status == JobStatus.PROCESSING.value),
            )
            .values(
                status=SegmentStatus.RUNNING.value,
                attempts=Segment.attempts + 1,
                claimed_by=ctx.hostname,
                task_id=task_id,
                started_at=func.now(),
            )
            .returning(Segment.attempts)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if attempt is None:
            log_event(log, "job.analyze.skipped", reason="segment done, claimed, or job not running")
            return "skipped"
        if attempt > settings.max_attempts:
            fail_job(
                session,
                job_id=job_id,
                code="attempts_exhausted",
                message=f"segment {segment_index} could not be analysed in {attempt - 1} attempts "
                "(the worker stopped each time: crash or time limit)",
            )
            log_event(
                log,
                "job.analyze.failed",
                level=logging.WARNING,
                code="attempts_exhausted",
                attempt=attempt - 1,
            )
            return "failed"
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
            path = local_video(job_id=job_id, video=video, storage=ctx.storage, settings=settings)
            result = analyzer.analyze_segment(path, _video_info(video), plan)
            uploading = time.perf_counter()
            uploaded = upload_explanations(ctx.storage, video=video, result=result)
            metrics.record_stage("upload", time.perf_counter() - uploading)
        except Exception as exc:  # classified: only curated errors are retried
            return _handle_failure(ctx, job_id=job_id, exc=exc, attempt=attempt, segment_index=segment_index)
        return _store_segment(ctx, job_id=job_id, result=result, analyzer=analyzer, uploaded=uploaded)


def _face_doc(face: Any) -> dict[str, Any]:
    return {
        "box": [round(float(v), 2) for v in face.box],
        "det_score": round(float(face.det_score), 5),
        "track": int(face.track),
        "segment_track": int(face.track),  # the id within the segment; "track" becomes video-wide
        "score": float(face.score),
    }


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
        if segment is None or segment.status == SegmentStatus.DONE.value:
            log_event(log, "job.analyze.dropped", reason="segment already stored")
            return "dropped"
        rows: dict[int, dict[str, Any]] = {}
        for frame in result.frames:
            rows.setdefault(
                frame.index,
                {
                    "job_id": job_id,
                    "segment_index": result.index,
                    "frame_index": frame.index,
                    "t": float(frame.t),
                    "score": None if frame.score is None else float(frame.score),
                    "faces": [_face_doc(face) for face in frame.faces],
                },
            )
        if rows:
            statement = insert(Frame).values(list(rows.values()))
            session.execute(
                statement.on_conflict_do_update(
                    constraint="uq_frames_job_id_frame_index",
                    set_={
                        "segment_index": statement.excluded.segment_index,
                        "t": statement.excluded.t,
                        "score": statement.excluded.score,
                        "faces": statement.excluded.faces,
                    },
                )
            )
        segment.status = SegmentStatus.DONE.value
        segment.score = result.score
        segment.frame_count = len(rows)
        segment.face_count = result.face_count
        segment.tracks = [track.to_dict() for track in result.tracks]
        segment.timings = {key: round(float(value), 4) for key, value in result.timings.items()}
        segment.finished_at = _now()
        store_segment_outputs(session, job_id=job_id, segment=segment, result=result, uploaded=uploaded)
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
        finished = done >= (job.segments_total or 0)
        if finished:
            _finalize_locked(session, job=job, analyzer=analyzer)
    log_event(
        log,
        "job.analyze.succeeded",
        frames=len(rows),
        faces=result.face_count,
        timings={key: round(float(value), 3) for key, value in result.timings.items()},
    )
    metrics.record_segment(timings=result.timings, frames=len(rows), faces=result.face_count)
    if finished:
        write_statistics_document(ctx.session_factory, ctx.storage, job_id=job_id)
        remove_job_copy(job_id=job_id, settings=ctx.settings)
        return "finalized"
    return "stored"


# --- finalize ----------------------------------------------------------------------------------


def _box(values: list[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in values)
    return x1, y1, x2, y2


def _finalize_locked(session: Session, *, job: Job, analyzer: Analyzer) -> None:
    """Aggregates every stored segment into the video's result. The caller holds the job lock."""
    from pipeline.types import FaceResult, FrameResult, SegmentResult

    finalize_started = time.perf_counter()

    segments = list(
        session.scalars(select(Segment).where(Segment.job_id == job.id).order_by(Segment.segment_index))
    )
    frame_rows = list(
        session.scalars(select(Frame).where(Frame.job_id == job.id).order_by(Frame.frame_index))
    )
    rows_by_segment: dict[int, list[Frame]] = defaultdict(list)
    for row in frame_rows:
        rows_by_segment[row.segment_index].append(row)
    ordered_rows: list[Frame] = []
    inputs: list[SegmentResult] = []
    for segment in segments:
        rows = rows_by_segment.get(segment.segment_index, [])
        ordered_rows.extend(rows)
        frames = [
            FrameResult(
                index=row.frame_index,
                t=row.t,
                score=row.score,
                faces=[
                    FaceResult(
                        box=_box(face["box"]),
                        det_score=face["det_score"],
                        track=int(face["segment_track"]),
                        score=face["score"],
                    )
                    for face in row.faces
                ],
            )
            for row in rows
        ]
        inputs.append(
            SegmentResult(
                index=segment.segment_index,
                start_s=segment.start_s,
                end_s=segment.end_s,
                score=segment.score,
                frames=frames,
                tracks=[],
                timings=dict(segment.timings or {}),
            )
        )
    probe_s = float((job.timings or {}).get("probe_s", 0.0))
    result = analyzer.finalize(_video_info(job.video), inputs, {"probe_s": probe_s})

    # Video-wide track ids back onto the stored faces (the frames come back in the order given).
    updates = []
    for row, frame in zip(ordered_rows, result.frames, strict=True):
        if row.faces:
            faces = [
                {**stored, "track": int(linked.track)}
                for stored, linked in zip(row.faces, frame.faces, strict=True)
            ]
            updates.append({"row_id": row.id, "new_faces": faces})
    if updates:
        frames_table = cast(Table, Frame.__table__)
        session.connection().execute(
            update(frames_table)
            .where(frames_table.c.id == bindparam("row_id"))
            .values(faces=bindparam("new_faces")),
            updates,
        )
    if result.tracks:
        statement = insert(Track).values(
            [
                {
                    "job_id": job.id,
                    "track_id": track.id,
                    "first_t": track.first_t,
                    "last_t": track.last_t,
                    "score": track.score,
                    "faces": track.faces,
                }
                for track in result.tracks
            ]
        )
        session.execute(
            statement.on_conflict_do_update(
                constraint="uq_tracks_job_id_track_id",
                set_={
                    "first_t": statement.excluded.first_t,
                    "last_t": statement.excluded.last_t,
                    "score": statement.excluded.score,
                    "faces": statement.excluded.faces,
                },
            )
        )
    finished_at = _now()
    timings = {key: round(float(value), 4) for key, value in result.timings.items()}
    if job.started_at is not None:
        timings["wall_s"] = round((finished_at - job.started_at).total_seconds(), 3)
    model = result.model
    job.status = JobStatus.SUCCEEDED.value
    job.verdict = result.verdict
    job.score = result.score
    job.threshold = result.threshold
    job.model_name = str(model.get("name", ""))[:128] or None
    job.model_version = str(model.get("version", ""))[:128] or None
    job.model_sha256 = str(model.get("sha256", ""))[:64] or None
    job.model_trained = bool(model.get("trained")) if "trained" in model else None
    job.timings = timings
    job.finished_at = finished_at
    job.error_code = None
    job.error_message = None
    finalize_outputs(session, job=job, result=result, segments=segments, top_k=analyzer.config.explain_top_k)
    record_job_end(session, job_id=job.id)
    metrics.record_stage("finalize", time.perf_counter() - finalize_started)
    log_event(
        log,
        "job.finalize.succeeded",
        verdict=result.verdict,
        score=result.score,
        tracks=len(result.tracks),
        frames=len(result.frames),
        wall_s=timings.get("wall_s"),
    )


# --- failures ----------------------------------------------------------------------------------


def _handle_failure(
    ctx: WorkerContext,
    *,
    job_id: uuid.UUID,
    exc: BaseException,
    attempt: int,
    segment_index: int | None = None,
) -> str:
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
                if segment_index is None:
                    session.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.status == JobStatus.PROCESSING.value, Job.plan.is_(None))
                        .values(status=JobStatus.QUEUED.value)
                        .execution_options(synchronize_session=False)
                    )
                else:
                    session.execute(
                        update(Segment)
                        .where(
                            Segment.job_id == job_id,
                            Segment.segment_index == segment_index,
                            Segment.status == SegmentStatus.RUNNING.value,
                        )
                        .values(status=SegmentStatus.PENDING.value)
                        .execution_options(synchronize_session=False)
                    )
        except RETRYABLE_ERRORS:
            pass  # the claim stays; the retried message takes it over (same task id)
        raise RetryLater(countdown=_backoff_s(ctx, attempt), cause=exc)
    with ctx.session() as session, session.begin():
        fail_job(session, job_id=job_id, code=failure.code, message=failure.message)
    remove_job_copy(job_id=job_id, settings=ctx.settings)
    return "failed"


# --- reconciliation ----------------------------------------------------------------------------


def reconcile(ctx: WorkerContext) -> dict[str, int]:
    """Re-sends the messages the jobs table says are missing. Jobs are the truth; Redis can lose
    messages (a flush, a restart without persistence, a publish that failed).

    A marker key left in the broker tells a broker that lost its data from one whose queues are
    merely long: when it is gone, every message in flight is sent again at once (see
    ``_resend_in_flight``); otherwise only those unsent or stale for longer than the limits."""
    client = _broker_client(ctx.settings)
    try:
        if client.exists(_broker_key(ctx.settings, BROKER_MARKER_KEY)):
            return _reconcile_stale(ctx)
        # One re-send at a time across workers (it can take longer than the reconcile interval).
        if not client.set(_broker_key(ctx.settings, _RESEND_LOCK_KEY), ctx.hostname, nx=True, ex=600):
            return {"skipped": 1}
        try:
            counts = _resend_in_flight(ctx)
            if "skipped" not in counts:
                client.set(_broker_key(ctx.settings, BROKER_MARKER_KEY), _now().isoformat())
        finally:
            client.delete(_broker_key(ctx.settings, _RESEND_LOCK_KEY))
        return counts
    finally:
        client.close()


def _broker_client(settings: Settings) -> Any:
    import redis

    return redis.Redis.from_url(settings.broker_url, socket_connect_timeout=5, socket_timeout=30)


def _broker_key(settings: Settings, name: str) -> str:
    return f"{settings.broker_key_prefix}{name}"


def _resend_in_flight(ctx: WorkerContext) -> dict[str, int]:
    """After the broker lost its data, sends again every message the jobs table has in flight:
    a probe per queued job, an analyze per pending segment, and the messages of claims (a job
    being probed, a segment running) under their own task ids. Tasks that were running when the
    broker went away were cancelled by their workers (they could not be acknowledged); the message
    sent again under the same id takes their claim over. Where one still runs (a flush with the
    workers connected), the work is done twice and stored once."""
    settings = ctx.settings
    with ctx.session() as session, session.begin():
        if not session.scalar(select(func.pg_try_advisory_xact_lock(RECONCILE_LOCK_ID))):
            return {"skipped": 1}
        probes: list[tuple[uuid.UUID, int, str | None]] = [
            (row[0], row[1], row[2] if row[3] == JobStatus.PROCESSING.value else None)
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
        segments: list[tuple[uuid.UUID, int, int, str | None]] = [
            (row[0], row[1], row[2], row[3] if row[4] == SegmentStatus.RUNNING.value else None)
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
    for job_id, priority, task_id in probes:
        enqueue_probe(
            ctx.celery,
            job_id=job_id,
            timeout_s=settings.enqueue_timeout_s,
            priority=priority,
            task_id=task_id,
        )
    for job_id, index, priority, task_id in segments:
        enqueue_analyze(
            ctx.celery,
            job_id=job_id,
            segment_index=index,
            timeout_s=settings.enqueue_timeout_s,
            priority=priority,
            task_id=task_id,
        )
    counts = {"probes": len(probes), "segments": len(segments)}
    # A new broker (first start) has nothing in flight: only a loss that mattered is a warning.
    level = logging.WARNING if probes or segments else logging.INFO
    log_event(log, "reconcile.broker_lost", level=level, **counts)
    return counts


def _reconcile_stale(ctx: WorkerContext) -> dict[str, int]:
    settings = ctx.settings
    now = _now()
    queued_cutoff = now - timedelta(seconds=settings.reconcile_queued_after_s)
    unsent_cutoff = now - timedelta(seconds=max(2 * settings.reconcile_interval_s, 30.0))
    stale_cutoff = _stale_before(ctx)
    with ctx.session() as session, session.begin():
        if not session.scalar(select(func.pg_try_advisory_xact_lock(RECONCILE_LOCK_ID))):
            return {"skipped": 1}
        probes: list[tuple[uuid.UUID, int]] = [
            (row[0], row[1])
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
        probe_ids = [job_id for job_id, _ in probes]
        segment_keys: list[tuple[uuid.UUID, int, int]] = [
            (row[0], row[1], row[2])
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
        touched = {*probe_ids, *(job_id for job_id, _, _ in segment_keys)}
        if touched:
            session.execute(
                update(Job)
                .where(Job.id.in_(touched))
                .values(enqueued_at=func.now())
                .execution_options(synchronize_session=False)
            )
    for job_id, priority in probes:
        enqueue_probe(ctx.celery, job_id=job_id, timeout_s=settings.enqueue_timeout_s, priority=priority)
    for job_id, index, priority in segment_keys:
        enqueue_analyze(
            ctx.celery,
            job_id=job_id,
            segment_index=index,
            timeout_s=settings.enqueue_timeout_s,
            priority=priority,
        )
    counts = {"probes": len(probe_ids), "segments": len(segment_keys)}
    if probe_ids or segment_keys:
        log_event(log, "reconcile.resent", **counts)
    return counts


def recover_node_claims(ctx: WorkerContext, *, booted_at: datetime) -> dict[str, int]:
    """A worker node restarted under the same name: whatever it had claimed before ``booted_at``
    died with it. Put those claims back and re-send their messages now, rather than after the
    broker's visibility timeout."""
    with ctx.session() as session, session.begin():
        segment_keys: list[tuple[uuid.UUID, int, int]] = [
            (row[0], row[1], row[2])
            for row in session.execute(
                update(Segment)
                .where(
                    Segment.claimed_by == ctx.hostname,
                    Segment.status == SegmentStatus.RUNNING.value,
                    Segment.started_at < booted_at,
                    exists().where(Job.id == Segment.job_id, Job.status == JobStatus.PROCESSING.value),
                )
                .values(status=SegmentStatus.PENDING.value)
                .returning(
                    Segment.job_id,
                    Segment.segment_index,
                    select(Job.priority).where(Job.id == Segment.job_id).scalar_subquery(),
                )
                .execution_options(synchronize_session=False)
            )
        ]
        probes: list[tuple[uuid.UUID, int]] = [
            (row[0], row[1])
            for row in session.execute(
                update(Job)
                .where(
                    Job.claimed_by == ctx.hostname,
                    Job.status == JobStatus.PROCESSING.value,
                    Job.plan.is_(None),
                    Job.claimed_at < booted_at,
                )
                .values(status=JobStatus.QUEUED.value)
                .returning(Job.id, Job.priority)
                .execution_options(synchronize_session=False)
            )
        ]
    for job_id, priority in probes:
        enqueue_probe(ctx.celery, job_id=job_id, timeout_s=ctx.settings.enqueue_timeout_s, priority=priority)
    for job_id, index, priority in segment_keys:
        enqueue_analyze(
            ctx.celery,
            job_id=job_id,
            segment_index=index,
            timeout_s=ctx.settings.enqueue_timeout_s,
            priority=priority,
        )
    counts = {"probes": len(probes), "segments": len(segment_keys)}
    if probes or segment_keys:
        log_event(log, "worker.recovery.resent", node=ctx.hostname, **counts)
    return counts
