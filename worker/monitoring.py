"""What a worker adds to its analysis for operators: its metrics port, resource reports, log context
per task, and the outputs kept for monitoring (input/output statistics, Grad-CAM heatmaps) written
next to the video in storage and indexed in the database.

Storage keys are derived from ids (``videos/<tenant>/<video>/…``, beside the video's ``source``), so
a segment that runs twice overwrites its images instead of leaving copies.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from celery.signals import task_postrun, task_prerun, worker_ready, worker_shutdown
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core import metrics
from core.config import Settings, get_settings
from core.logs import log_context, log_event
from core.models import Explanation, Job, JobStatistics, Segment, Video
from core.queue import TaskName
from core.resources import ResourceReporter
from core.statistics import statistics_document
from core.storage import ObjectStore

if TYPE_CHECKING:
    from pipeline.types import SegmentResult, VideoResult

__all__ = [
    "artifact_key",
    "discard_uploads",
    "explanation_rows",
    "finalize_outputs",
    "gpu_usage",
    "start_pool_process_monitoring",
    "store_segment_outputs",
    "upload_explanations",
    "write_statistics_document",
]

log = logging.getLogger(__name__)

_reporters: list[ResourceReporter] = []
_task_contexts: dict[str, contextlib.ExitStack] = {}


# --- storage layout ------------------------------------------------------------------------------


def artifact_key(*, tenant_id: uuid.UUID, video_id: uuid.UUID, name: str) -> str:
    """Beside ``core.storage.video_key``'s ``videos/<tenant>/<video>/source``."""
    return f"videos/{tenant_id}/{video_id}/{name}"


def _explanation_name(frame_index: int, face: int, kind: str) -> str:
    return f"explanations/frame-{frame_index:07d}-face-{face}.{kind}.jpg"


def upload_explanations(storage: ObjectStore, *, video: Video, result: SegmentResult) -> list[dict[str, Any]]:
    """Writes each explained face's heatmap and crop; returns the rows to store with the segment.
    Storage errors propagate (the segment is retried like any other storage outage)."""
    rows = []
    for explanation in result.explanations:
        keys = {}
        for kind, data in (("heatmap", explanation.heatmap_jpeg), ("crop", explanation.crop_jpeg)):
            key = artifact_key(
                tenant_id=video.tenant_id,
                video_id=video.id,
                name=_explanation_name(explanation.frame_index, explanation.face, kind),
            )
            storage.put_bytes(key, data, content_type="image/jpeg")
            keys[kind] = key
        rows.append(
            {
                "segment_index": result.index,
                "frame_index": explanation.frame_index,
                "face": explanation.face,
                "t": float(explanation.t),
                "score": float(explanation.score),
                "box": [round(float(v), 2) for v in explanation.box],
                "heatmap_key": keys["heatmap"],
                "crop_key": keys["crop"],
            }
        )
    return rows


def discard_uploads(storage: ObjectStore, uploaded: list[dict[str, Any]]) -> None:
    """Removes images a segment wrote when its results are dropped (the job ended meanwhile)."""
    for row in uploaded:
        for key in (row["heatmap_key"], row["crop_key"]):
            try:
                storage.delete(key)
            except Exception as exc:  # best effort: an orphan image is logged, never fatal
                log_event(
                    log,
                    "job.explanation.cleanup_failed",
                    level=logging.WARNING,
                    key=key,
                    error=str(exc)[:200],
                )


def explanation_rows(job_id: uuid.UUID, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"job_id": job_id, **row} for row in rows]


def store_segment_outputs(
    session: Session,
    *,
    job_id: uuid.UUID,
    segment: Segment,
    result: SegmentResult,
    uploaded: list[dict[str, Any]],
) -> None:
    """The segment's input statistics and its explanations, in the transaction storing its frames."""
    segment.quality = result.quality
    if uploaded:
        statement = insert(Explanation).values(explanation_rows(job_id, uploaded))
        session.execute(
            statement.on_conflict_do_update(
                constraint="uq_explanations_job_id_frame_index_face",
                set_={
                    "segment_index": statement.excluded.segment_index,
                    "t": statement.excluded.t,
                    "score": statement.excluded.score,
                    "box": statement.excluded.box,
                    "heatmap_key": statement.excluded.heatmap_key,
                    "crop_key": statement.excluded.crop_key,
                },
            )
        )


def finalize_outputs(
    session: Session, *, job: Job, result: VideoResult, segments: list[Segment], top_k: int
) -> None:
    """At finalize (job lock held): the job's statistics row and the ranks of its top-k heatmaps."""
    from pipeline.quality import video_statistics

    stats = video_statistics([segment.quality for segment in segments], result.video)
    spread = stats.pop("spread", {})
    columns = {
        name: stats.get(name)
        for name in (
            "brightness_pct",
            "histogram_mean",
            "histogram_std",
            "histogram_variance",
            "sharpness",
            "face_sharpness",
            "face_size_px",
            "face_size_ratio",
            "faces_per_frame",
            "face_frame_ratio",
            "width",
            "height",
            "fps",
            "duration_s",
        )
    }
    values = {
        "job_id": job.id,
        "tenant_id": job.tenant_id,
        "finished_at": job.finished_at or datetime.now(UTC),
        "frames_sampled": int(stats.get("frames_sampled") or 0),
        "faces": int(stats.get("faces") or 0),
        **columns,
        "codec": str(stats.get("codec") or "")[:64] or None,
        "score": result.score,
        "verdict": result.verdict,
        "no_face": result.verdict == "no_face",
        "details": {
            "spread": spread,
            "segments": [
                {"index": s.segment_index, "score": s.score, "quality": s.quality} for s in segments
            ],
            "model": dict(result.model),
        },
    }
    statement = insert(JobStatistics).values(values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[JobStatistics.job_id],
            set_={key: statement.excluded[key] for key in values if key != "job_id"},
        )
    )
    session.execute(
        update(Explanation)
        .where(Explanation.job_id == job.id)
        .values(rank=None)
        .execution_options(synchronize_session=False)
    )
    if top_k > 0:
        ranked = list(
            session.scalars(
                select(Explanation.id)
                .where(Explanation.job_id == job.id)
                .order_by(Explanation.score.desc(), Explanation.frame_index, Explanation.face)
                .limit(top_k)
            )
        )
        for rank, explanation_id in enumerate(ranked, start=1):
            session.execute(
                update(Explanation)
                .where(Explanation.id == explanation_id)
                .values(rank=rank)
                .execution_options(synchronize_session=False)
            )


def write_statistics_document(session_factory: Any, storage: ObjectStore, *, job_id: uuid.UUID) -> str | None:
    """Copies the job's statistics row to ``statistics.json`` beside the video and records the key.
    Best effort: the row is the source of truth, so a storage outage is logged, not retried."""
    with session_factory() as session:
        row = session.get(JobStatistics, job_id)
        job = session.get(Job, job_id)
        if row is None or job is None:
            return None
        document = statistics_document(row)
        key = artifact_key(tenant_id=job.tenant_id, video_id=job.video_id, name="statistics.json")
        try:
            storage.put_bytes(
                key, json.dumps(document, default=str).encode(), content_type="application/json"
            )
        except Exception as exc:  # any storage failure: the database keeps the statistics
            log_event(
                log,
                "job.statistics.store_failed",
                level=logging.WARNING,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            return None
        row.storage_key = key
        session.commit()
    return key


# --- process monitoring ----------------------------------------------------------------------------


def gpu_usage() -> dict[str, Any] | None:
    """GPU memory of this process and its device, when torch is loaded and CUDA is in use; the
    figures also go to the ``deepfakestream_gpu_memory_bytes`` gauge."""
    torch = sys.modules.get("torch")  # never import torch here: the main process must not load it
    if torch is None or not torch.cuda.is_available():
        return None
    device = torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(device)
    usage = {
        "device": torch.cuda.get_device_name(device),
        "index": int(device),
        "allocated_bytes": int(torch.cuda.memory_allocated(device)),
        "reserved_bytes": int(torch.cuda.memory_reserved(device)),
        "device_used_bytes": int(total - free),
        "device_total_bytes": int(total),
    }
    for kind in ("allocated", "reserved"):
        metrics.GPU_MEMORY_BYTES.labels(kind).set(usage[f"{kind}_bytes"])
    metrics.GPU_MEMORY_BYTES.labels("device_used").set(usage["device_used_bytes"])
    metrics.GPU_MEMORY_BYTES.labels("device_total").set(usage["device_total_bytes"])
    return usage


def _settings() -> Settings:
    return get_settings()


def _pool_index() -> int:
    from celery.utils.log import current_process_index

    index = current_process_index(base=0)
    return int(index) if index is not None else 0


def start_pool_process_monitoring(settings: Settings, *, node: str | None) -> None:
    """The pool process's metrics port and resource reports; called once its model has loaded."""
    node = str(node or f"worker@{os.uname().nodename}")
    if settings.worker_metrics_port:
        # One port per pool process (base + index): each process has its own counters.
        metrics.serve_metrics(settings.worker_metrics_port + _pool_index())
    _reporters.append(ResourceReporter(settings, node=node, role="pool", gpu_probe=gpu_usage).start())


@worker_ready.connect
def _monitor_main_process(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None) or f"worker@{os.uname().nodename}"
    _reporters.append(ResourceReporter(_settings(), node=str(hostname), role="main").start())


@worker_shutdown.connect
def _stop_reports(**_: Any) -> None:
    while _reporters:
        _reporters.pop().stop()


def _task_fields(name: str, args: Any) -> dict[str, Any]:
    args = list(args or [])
    if name in (TaskName.PROBE.value, TaskName.ANALYZE.value) and args:
        fields: dict[str, Any] = {"job_id": str(args[0])[:64]}
        if name == TaskName.ANALYZE.value and len(args) > 1:
            fields["segment"] = args[1]
        return fields
    if name == TaskName.DELIVER_WEBHOOK.value and args:
        return {"delivery_id": str(args[0])[:64]}
    return {}


@task_prerun.connect
def _bind_task_context(task_id: str | None = None, task: Any = None, args: Any = None, **_: Any) -> None:
    """Every line a task logs, Celery's own included, carries its job and segment."""
    if task_id is None or task is None:
        return
    stack = contextlib.ExitStack()
    stack.enter_context(log_context(task_id=task_id, **_task_fields(getattr(task, "name", ""), args)))
    _task_contexts[task_id] = stack


@task_postrun.connect
def _unbind_task_context(task_id: str | None = None, **_: Any) -> None:
    stack = _task_contexts.pop(task_id or "", None)
    if stack is not None:
        stack.close()
