"""Prometheus metrics shared by the API and the workers: defined once here, recorded where things happen.

Every label has a bounded set of values (route templates, queue names, stage names, job states),
so the number of series stays fixed however many jobs run. Counters and histograms live in the
process's default registry; values that are read from the database or Redis at scrape time
(jobs by state, queue depth, drift) come from collectors the API adds per scrape.

With ``PROMETHEUS_MULTIPROC_DIR`` set (several uvicorn processes behind one port), ``render``
merges the values every process wrote there.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.registry import Collector

from core.logs import log_event

__all__ = [
    "CONNECTIONS_CLOSED",
    "CONTENT_TYPE_LATEST",
    "FACES_DETECTED",
    "FRAMES_ANALYZED",
    "GPU_MEMORY_BYTES",
    "HTTP_REQUEST_DURATION",
    "JOBS_FINISHED",
    "JOB_DURATION",
    "NO_FACE_RESULTS",
    "QUEUE_WAIT",
    "REVIEWS",
    "REVIEW_LABELS",
    "SEGMENT_FRAMES_PER_SECOND",
    "STAGES",
    "STAGE_DURATION",
    "UNMATCHED_ROUTE",
    "WEBHOOK_DELIVERIES",
    "WEBHOOK_OUTCOMES",
    "gauge_family",
    "observe_http_request",
    "record_job_finished",
    "record_queue_wait",
    "record_review",
    "record_segment",
    "record_stage",
    "record_webhook_delivery",
    "render",
    "serve_metrics",
]

log = logging.getLogger(__name__)

# Requests that matched no route share one label value, so scanners probing random paths cannot
# create new series.
UNMATCHED_ROUTE = "<unmatched>"
# Pipeline stages timed per segment (decode, detect, classify, quality, explain) or per job.
STAGES = ("probe", "decode", "detect", "classify", "quality", "explain", "finalize", "upload")
WEBHOOK_OUTCOMES = ("succeeded", "retrying", "failed")
_JOB_STATES = ("succeeded", "failed", "canceled")
_VERDICTS = ("fake", "real", "inconclusive", "no_face", "none")
REVIEW_LABELS = ("fake", "real", "unsure")

HTTP_REQUEST_DURATION = Histogram(
    "deepfakestream_http_request_duration_seconds",
    "Time the API took to answer, by route template",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
JOBS_FINISHED = Counter(
    "deepfakestream_jobs_finished_total",
    "Jobs that reached an end state, by state and verdict",
    ["status", "verdict"],
)
JOB_DURATION = Histogram(
    "deepfakestream_job_duration_seconds",
    "End-to-end time of a job, from submission to its end state",
    ["status"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600),
)
QUEUE_WAIT = Histogram(
    "deepfakestream_queue_wait_seconds",
    "Time between a message being sent and a worker starting on it, by queue",
    ["queue"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
STAGE_DURATION = Histogram(
    "deepfakestream_stage_duration_seconds",
    "Time spent in each pipeline stage (per segment; probe and finalize per job)",
    ["stage"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
CONNECTIONS_CLOSED = Counter(
    "deepfakestream_api_connections_closed_total",
    "Connections the API's server closed before a request: headers too slow, or past the per-address cap",
    ["reason"],
)
FRAMES_ANALYZED = Counter("deepfakestream_frames_analyzed_total", "Sampled frames analysed")
FACES_DETECTED = Counter("deepfakestream_faces_detected_total", "Faces found in sampled frames")
SEGMENT_FRAMES_PER_SECOND = Histogram(
    "deepfakestream_segment_frames_per_second",
    "Analysis throughput of one segment: sampled frames over the segment's processing time",
    buckets=(0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500),
)
NO_FACE_RESULTS = Counter(
    "deepfakestream_no_face_results_total", "Jobs that finished without a face in any sampled frame"
)
WEBHOOK_DELIVERIES = Counter(
    "deepfakestream_webhook_deliveries_total",
    f"Webhook delivery attempts by outcome ({', '.join(WEBHOOK_OUTCOMES)})",
    ["outcome"],
)
REVIEWS = Counter(
    "deepfakestream_reviews_total",
    "Reviews recorded (a job reviewed again counts again), by the model's verdict and the reviewer's label",
    ["model_verdict", "reviewer_label"],
)
GPU_MEMORY_BYTES = Gauge(
    "deepfakestream_gpu_memory_bytes",
    "GPU memory of this worker process (allocated and reserved by torch) and of its device (used, total)",
    ["kind"],
    multiprocess_mode="livesum",
)

_STAGE_TIMING_KEYS = {
    "decode_s": "decode",
    "detect_s": "detect",
    "classify_s": "classify",
    "quality_s": "quality",
    "explain_s": "explain",
}


def observe_http_request(*, method: str, route: str | None, status: int, seconds: float) -> None:
    HTTP_REQUEST_DURATION.labels(method.upper(), route or UNMATCHED_ROUTE, str(status)).observe(
        max(seconds, 0.0)
    )


def _seconds_since(moment: datetime | None, now: datetime | None = None) -> float | None:
    if moment is None:
        return None
    now = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((now - moment).total_seconds(), 0.0)


def record_queue_wait(*, queue: str, sent_at: datetime | None, started_at: datetime | None = None) -> None:
    """How long a message waited: from ``sent_at`` (when the job's last message left) to now."""
    waited = _seconds_since(sent_at, started_at)
    if waited is not None:
        QUEUE_WAIT.labels(queue).observe(waited)


def record_stage(stage: str, seconds: float) -> None:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
    STAGE_DURATION.labels(stage).observe(max(float(seconds), 0.0))


def record_segment(*, timings: Mapping[str, float], frames: int, faces: int) -> None:
    """One analysed segment: its stage times, its frames and faces, and its throughput."""
    busy = 0.0
    for key, stage in _STAGE_TIMING_KEYS.items():
        if key in timings:
            seconds = float(timings[key])
            record_stage(stage, seconds)
            busy += seconds
    FRAMES_ANALYZED.inc(max(frames, 0))
    FACES_DETECTED.inc(max(faces, 0))
    if frames > 0 and busy > 0:
        SEGMENT_FRAMES_PER_SECOND.observe(frames / busy)


def record_job_finished(
    *,
    status: str,
    verdict: str | None,
    created_at: datetime | None,
    finished_at: datetime | None = None,
) -> None:
    """A job reached ``status`` (succeeded, failed or canceled)."""
    if status not in _JOB_STATES:
        raise ValueError(f"not an end state: {status!r}")
    verdict_label = verdict if verdict in _VERDICTS else "none"
    JOBS_FINISHED.labels(status, verdict_label).inc()
    if verdict == "no_face":
        NO_FACE_RESULTS.inc()
    elapsed = _seconds_since(created_at, finished_at)
    if elapsed is not None:
        JOB_DURATION.labels(status).observe(elapsed)


def record_review(*, model_verdict: str | None, reviewer_label: str) -> None:
    if reviewer_label not in REVIEW_LABELS:
        raise ValueError(f"unknown review label {reviewer_label!r}; known: {', '.join(REVIEW_LABELS)}")
    verdict_label = model_verdict if model_verdict in _VERDICTS else "none"
    REVIEWS.labels(verdict_label, reviewer_label).inc()


def record_webhook_delivery(outcome: str) -> None:
    if outcome not in WEBHOOK_OUTCOMES:
        raise ValueError(f"unknown webhook outcome {outcome!r}; known: {', '.join(WEBHOOK_OUTCOMES)}")
    WEBHOOK_DELIVERIES.labels(outcome).inc()


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render(collectors: Iterable[Collector] = ()) -> bytes:
    """The exposition text: this process's metrics (or every process's, in multiprocess mode)
    followed by ``collectors``, read now."""
    if _multiprocess_dir():
        from prometheus_client import multiprocess

        base = CollectorRegistry()
        multiprocess.MultiProcessCollector(base)
        body = generate_latest(base)
    else:
        body = generate_latest(REGISTRY)
    extra = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        extra.register(collector)
    return body + generate_latest(extra)


def serve_metrics(port: int, *, addr: str = "0.0.0.0", attempts: int = 10, wait_s: float = 1.0) -> bool:
    """Serves this process's registry on ``port`` from a daemon thread.

    A port still held by a process that is exiting (a replaced pool process) is retried in the
    background for ``attempts`` × ``wait_s``; a port that stays taken is logged, never fatal: a
    worker without its metrics port still analyses videos.
    """

    def bind() -> bool:
        try:
            start_http_server(port, addr=addr)
        except OSError as exc:
            log_event(log, "metrics.server.bind_failed", level=logging.DEBUG, port=port, error=str(exc))
            return False
        log_event(log, "metrics.server.started", port=port, pid=os.getpid())
        return True

    if bind():
        return True

    def retry() -> None:
        for _ in range(attempts):
            time.sleep(wait_s)
            if bind():
                return
        log_event(
            log,
            "metrics.server.unavailable",
            level=logging.WARNING,
            port=port,
            pid=os.getpid(),
            attempts=attempts,
        )

    threading.Thread(target=retry, name=f"metrics-port-{port}", daemon=True).start()
    return False


def gauge_family(
    name: str, documentation: str, labels: list[str], values: Iterable[tuple[list[str], float]]
) -> Any:
    """A gauge read at scrape time (for collectors): ``values`` are (label values, value) pairs."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, documentation, labels=labels)
    for label_values, value in values:
        family.add_metric(label_values, float(value))
    return family
