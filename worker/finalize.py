"""The finalize stage: the stored segments aggregated into the video's result, the job done.

It runs when the last segment is stored (or a probe planned none). ``finalize_job`` runs inside
the caller's transaction with the job's row lock held, so exactly one writer sees every segment
done; ``after_finalize`` runs once that transaction has committed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import metrics
from core.logs import log_event
from core.models import Frame, Job, Segment
from lifecycle.jobs import move_locked_job
from lifecycle.transitions import JOB_SUCCEED
from worker.fetch import remove_job_copy
from worker.image import store_image_faces
from worker.results import (
    rank_explanations,
    set_video_tracks,
    store_job_statistics,
    store_tracks,
    video_info,
    write_statistics_document,
)
from worker.runtime import WorkerContext

if TYPE_CHECKING:
    from pipeline.analyzer import Analyzer
    from pipeline.types import SegmentResult

__all__ = ["after_finalize", "finalize_job"]

log = logging.getLogger(__name__)


def _box(values: list[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in values)
    return x1, y1, x2, y2


def _stored_segments(segments: list[Segment], rows_by_segment: dict[int, list[Frame]]) -> list[SegmentResult]:
    """The segments as the pipeline returned them, rebuilt from their rows (segment-local tracks)."""
    from pipeline.types import FaceResult, FrameResult, SegmentResult, SmallFaces

    return [
        SegmentResult(
            index=segment.segment_index,
            start_s=segment.start_s,
            end_s=segment.end_s,
            score=segment.score,
            frames=[
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
                for row in rows_by_segment.get(segment.segment_index, [])
            ],
            tracks=[],
            timings=dict(segment.timings or {}),
            small_faces=SmallFaces.from_dict((segment.quality or {}).get("small_faces")),
        )
        for segment in segments
    ]


def finalize_job(session: Session, *, job: Job, analyzer: Analyzer) -> None:
    """Aggregates every stored segment into the video's result. The caller holds the job lock."""
    started = time.perf_counter()
    segments = list(
        session.scalars(select(Segment).where(Segment.job_id == job.id).order_by(Segment.segment_index))
    )
    rows_by_segment: dict[int, list[Frame]] = defaultdict(list)
    for row in session.scalars(select(Frame).where(Frame.job_id == job.id).order_by(Frame.frame_index)):
        rows_by_segment[row.segment_index].append(row)
    probe_s = float((job.timings or {}).get("probe_s", 0.0))
    result = analyzer.finalize(
        video_info(job.video), _stored_segments(segments, rows_by_segment), {"probe_s": probe_s}
    )

    ordered_rows = [row for segment in segments for row in rows_by_segment.get(segment.segment_index, [])]
    set_video_tracks(session, ordered_rows, result)
    store_tracks(session, job_id=job.id, tracks=result.tracks)
    finished_at = datetime.now(UTC)
    timings = {key: round(float(value), 4) for key, value in result.timings.items()}
    if job.started_at is not None:
        timings["wall_s"] = round((finished_at - job.started_at).total_seconds(), 3)
    model = result.model
    job.verdict = result.verdict
    job.score = result.score
    job.threshold = result.threshold
    job.model_name = str(model.get("name", ""))[:128] or None
    job.model_version = str(model.get("version", ""))[:128] or None
    job.model_sha256 = str(model.get("sha256", ""))[:64] or None
    job.model_trained = bool(model.get("trained")) if "trained" in model else None
    job.model_caveat = result.caveat
    band = result.inconclusive_band
    job.inconclusive_low, job.inconclusive_high = (None, None) if band is None else band
    job.aggregation = result.aggregation
    job.analysis_settings = dict(result.settings)
    job.timings = timings
    job.finished_at = finished_at
    job.error_code = None
    job.error_message = None
    job.no_face_reason = result.no_face_reason
    store_image_faces(job, result)
    store_job_statistics(session, job=job, result=result, segments=segments)
    rank_explanations(session, job_id=job.id, top_k=analyzer.config.explain_top_k)
    move_locked_job(session, job=job, transition=JOB_SUCCEED)
    metrics.record_stage("finalize", time.perf_counter() - started)
    log_event(
        log,
        "job.finalize.succeeded",
        verdict=result.verdict,
        score=result.score,
        tracks=len(result.tracks),
        frames=len(result.frames),
        wall_s=timings.get("wall_s"),
    )


def after_finalize(ctx: WorkerContext, *, job_id: uuid.UUID) -> str:
    """Once the finalizing transaction has committed: ``statistics.json`` beside the video, and the
    job's local copy of the video removed."""
    write_statistics_document(ctx.session_factory, ctx.storage, job_id=job_id)
    remove_job_copy(job_id=job_id, settings=ctx.settings)
    return "finalized"
