"""Prometheus helpers: bounded labels, the values each recorder adds, a worker's metrics port, and
several processes merged in multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from core import metrics
from tests.utils.platform import REPO_ROOT, free_port


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_http_requests_are_labelled_by_route_template() -> None:
    before = _value(
        "deepfakestream_http_request_duration_seconds_count", method="GET", route="/v1/x/{id}", status="200"
    )
    metrics.observe_http_request(method="get", route="/v1/x/{id}", status=200, seconds=0.01)
    metrics.observe_http_request(method="GET", route=None, status=404, seconds=0.002)
    assert (
        _value(
            "deepfakestream_http_request_duration_seconds_count",
            method="GET",
            route="/v1/x/{id}",
            status="200",
        )
        == before + 1
    )
    assert (
        _value(
            "deepfakestream_http_request_duration_seconds_count",
            method="GET",
            route=metrics.UNMATCHED_ROUTE,
            status="404",
        )
        >= 1
    )


def test_record_segment_counts_frames_faces_and_stages() -> None:
    frames_before = _value("deepfakestream_frames_analyzed_total")
    decode_before = _value("deepfakestream_stage_duration_seconds_count", stage="decode")
    decode_sum = _value("deepfakestream_stage_duration_seconds_sum", stage="decode")
    fps_before = _value("deepfakestream_segment_frames_per_second_count")
    metrics.record_segment(
        timings={"decode_s": 0.5, "detect_s": 1.0, "classify_s": 0.4, "quality_s": 0.05, "explain_s": 0.05},
        frames=20,
        faces=18,
    )
    assert _value("deepfakestream_frames_analyzed_total") == frames_before + 20
    assert _value("deepfakestream_stage_duration_seconds_count", stage="decode") == decode_before + 1
    assert _value("deepfakestream_stage_duration_seconds_sum", stage="decode") == pytest.approx(
        decode_sum + 0.5
    )
    assert _value("deepfakestream_segment_frames_per_second_count") == fps_before + 1
    # A segment with no frames adds no throughput sample.
    metrics.record_segment(timings={"decode_s": 0.1}, frames=0, faces=0)
    assert _value("deepfakestream_segment_frames_per_second_count") == fps_before + 1


def test_record_job_finished_counts_verdicts_and_duration() -> None:
    no_face_before = _value("deepfakestream_no_face_results_total")
    created = datetime.now(UTC) - timedelta(seconds=42)
    metrics.record_job_finished(status="succeeded", verdict="no_face", created_at=created)
    metrics.record_job_finished(status="failed", verdict=None, created_at=None)
    assert _value("deepfakestream_no_face_results_total") == no_face_before + 1
    assert _value("deepfakestream_jobs_finished_total", status="failed", verdict="none") >= 1
    assert _value("deepfakestream_job_duration_seconds_sum", status="succeeded") >= 42
    with pytest.raises(ValueError):
        metrics.record_job_finished(status="processing", verdict=None, created_at=None)


def test_unknown_label_values_are_refused() -> None:
    with pytest.raises(ValueError):
        metrics.record_stage("made-up", 1.0)
    with pytest.raises(ValueError):
        metrics.record_webhook_delivery("exploded")
    metrics.record_webhook_delivery("retrying")
    assert _value("deepfakestream_webhook_deliveries_total", outcome="retrying") >= 1


def test_queue_wait_ignores_a_missing_send_time() -> None:
    before = _value("deepfakestream_queue_wait_seconds_count", queue="probe")
    metrics.record_queue_wait(queue="probe", sent_at=None)
    metrics.record_queue_wait(queue="probe", sent_at=datetime.now(UTC) - timedelta(seconds=3))
    assert _value("deepfakestream_queue_wait_seconds_count", queue="probe") == before + 1
    assert _value("deepfakestream_queue_wait_seconds_sum", queue="probe") >= 3


def test_serve_metrics_answers_on_its_port_and_survives_a_taken_port() -> None:
    port = free_port()
    assert metrics.serve_metrics(port, addr="127.0.0.1")
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "deepfakestream_frames_analyzed_total" in text
    # The same port again: no exception, a background retry that gives up quietly.
    assert metrics.serve_metrics(port, addr="127.0.0.1", attempts=1, wait_s=0.01) is False


_CHILD = """
import sys
from core import metrics
metrics.record_segment(timings={"decode_s": 0.1}, frames=int(sys.argv[1]), faces=0)
"""


def test_render_merges_processes_in_multiprocess_mode(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    for frames in (3, 4):
        subprocess.run([sys.executable, "-c", _CHILD, str(frames)], env=env, check=True, cwd=REPO_ROOT)
    reader = "from core import metrics; import sys; sys.stdout.write(metrics.render().decode())"
    text = subprocess.run(
        [sys.executable, "-c", reader], env=env, check=True, capture_output=True, text=True, cwd=REPO_ROOT
    ).stdout
    assert "deepfakestream_frames_analyzed_total 7.0" in text


def test_render_appends_scrape_time_collectors() -> None:
    class Constant:
        def collect(self):  # type: ignore[no-untyped-def]
            yield metrics.gauge_family(
                "deepfakestream_test_constant", "a test gauge", ["kind"], [(["a"], 2.0)]
            )

    text = metrics.render([Constant()]).decode()  # type: ignore[list-item]
    assert 'deepfakestream_test_constant{kind="a"} 2.0' in text
    assert "deepfakestream_http_request_duration_seconds" in text


def test_reviews_are_counted_by_model_verdict_and_reviewer_label() -> None:
    before = _value("deepfakestream_reviews_total", model_verdict="fake", reviewer_label="real")
    metrics.record_review(model_verdict="fake", reviewer_label="real")
    metrics.record_review(model_verdict="made-up", reviewer_label="unsure")  # folded into "none"
    with pytest.raises(ValueError):
        metrics.record_review(model_verdict="fake", reviewer_label="probably")
    assert _value("deepfakestream_reviews_total", model_verdict="fake", reviewer_label="real") == before + 1
    assert _value("deepfakestream_reviews_total", model_verdict="none", reviewer_label="unsure") >= 1
