"""Monitoring through the real platform (PostgreSQL, Redis, moto S3, uvicorn, a Celery worker):
Prometheus on the API and the worker's port, admin health snapshots (stored) and resource
consumption, explanations and statistics beside the video, task log context, and drift over a
shifted and an unshifted synthetic stream."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from core.models import HealthCheck, Job, JobStatistics, Video
from tests.utils.media import FaceVideo, make_face_video
from tests.utils.stack import QUICK_SETTINGS, Stack, running_stack
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.integration

EXPLAIN_TOP_K = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("monitoring-stack"),
        settings={**QUICK_SETTINGS, "DRIFT_REFRESH_S": "0", "EXPLAIN_TOP_K": str(EXPLAIN_TOP_K)},
        bucket="dfs-monitoring",
        worker_name="monitor",
        metrics=True,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def finished(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One job through the platform: 3 s, one face, three 1 s segments."""
    video: FaceVideo = make_face_video(
        tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=3.0, width=320, height=240, fps=10.0
    )
    headers = stack.new_key()
    job = stack.submit(headers, video.path, segment_seconds="1")
    done = stack.wait_job(headers, job["id"])
    assert done["status"] == "succeeded", done
    return {"headers": headers, "job": done, "video": video}


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (summed over series matching ``labels``)."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{.*\})?\s+(\S+)$", line)
        if match is None or match.group(1) != name:
            continue
        series = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(series.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
            found = True
    assert found, (
        f"no sample {name}{labels} in:\n"
        + "\n".join(line for line in text.splitlines() if line.startswith(name))[:2000]
    )
    return total


# --- metrics -------------------------------------------------------------------------------------


def test_api_metrics_use_route_templates_and_read_jobs_and_queues(
    stack: Stack, finished: dict[str, Any]
) -> None:
    job_id = finished["job"]["id"]
    with stack.client(finished["headers"]) as client:
        assert client.get(f"/v1/jobs/{job_id}").status_code == 200
        assert client.get("/no/such/route/123").status_code == 404
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        _metric(
            text,
            "deepfakestream_http_request_duration_seconds_count",
            route="/v1/jobs/{job_id}",
            method="GET",
        )
        >= 1
    )
    assert _metric(text, "deepfakestream_http_request_duration_seconds_count", route="<unmatched>") >= 1
    assert job_id not in text and "/no/such/route" not in text  # no unbounded labels
    assert _metric(text, "deepfakestream_jobs", state="succeeded") >= 1
    for queue in ("probe", "analyze", "webhooks", "maintenance"):
        assert _metric(text, "deepfakestream_queue_depth", queue=queue) >= 0
    for source in ("database", "broker", "workers", "drift"):
        assert _metric(text, "deepfakestream_scrape_source_up", source=source) == 1.0
    assert _metric(text, "deepfakestream_worker_processes", role="pool") >= 1


def test_worker_metrics_port_has_pipeline_metrics(stack: Stack, finished: dict[str, Any]) -> None:
    text = httpx.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=10).text
    frames = finished["job"]
    assert frames["status"] == "succeeded"
    assert _metric(text, "deepfakestream_frames_analyzed_total") >= 6
    assert _metric(text, "deepfakestream_faces_detected_total") >= 6
    for stage in ("probe", "decode", "detect", "classify", "quality", "explain", "upload", "finalize"):
        assert _metric(text, "deepfakestream_stage_duration_seconds_count", stage=stage) >= 1, stage
    assert _metric(text, "deepfakestream_queue_wait_seconds_count", queue="probe") >= 1
    assert _metric(text, "deepfakestream_queue_wait_seconds_count", queue="analyze") >= 3
    assert _metric(text, "deepfakestream_jobs_finished_total", status="succeeded") >= 1
    assert _metric(text, "deepfakestream_job_duration_seconds_count", status="succeeded") >= 1
    assert _metric(text, "deepfakestream_segment_frames_per_second_count") >= 3
    assert _metric(text, "process_resident_memory_bytes") > 0


# --- admin endpoints -----------------------------------------------------------------------------


def test_healthcheck_is_admin_only_and_every_call_is_stored(stack: Stack, finished: dict[str, Any]) -> None:
    admin = stack.new_key(admin=True)
    with stack.client(finished["headers"]) as client:
        refused = client.get("/healthcheck/")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    with stack.client() as client:
        assert client.get("/healthcheck/").status_code == 401
    with stack.session() as session:
        before = session.scalar(select(func.count()).select_from(HealthCheck)) or 0
    with stack.client(admin) as client:
        first = client.get("/healthcheck/")
        second = client.get("/healthcheck/")
        history = client.get("/healthcheck/history/", params={"limit": 5})
    assert first.status_code == 200, first.text
    snapshot = first.json()
    assert snapshot["status"] == "healthy"
    # The worker runs beat: the webhook dispatcher has run lately.
    for name in ("database", "broker", "storage", "workers", "webhook_dispatcher"):
        assert snapshot["checks"][name]["ok"] is True, snapshot["checks"][name]
        assert snapshot["checks"][name]["latency_ms"] >= 0
    assert f"{stack.worker_name}@" in " ".join(snapshot["checks"]["workers"]["names"])
    assert set(snapshot["checks"]["broker"]["queues"]) == {"probe", "analyze", "webhooks", "maintenance"}
    with stack.session() as session:
        after = session.scalar(select(func.count()).select_from(HealthCheck)) or 0
        stored = session.get(HealthCheck, second.json()["id"])
        assert stored is not None and stored.status == "healthy" and stored.api_key_id is not None
    assert after == before + 2
    assert [item["id"] for item in history.json()["items"][:2]] == [second.json()["id"], snapshot["id"]]


def test_resource_consumption_lists_worker_processes_and_queues(
    stack: Stack, finished: dict[str, Any]
) -> None:
    admin = stack.new_key(admin=True)
    with stack.client(finished["headers"]) as client:
        assert client.get("/system/resource/consumption/").status_code == 403
    with stack.client(admin) as client:

        def both_roles() -> dict[str, Any] | None:
            body = client.get("/system/resource/consumption/").json()
            roles = {w["role"] for w in body["workers"] if w["node"].startswith(f"{stack.worker_name}@")}
            return body if roles == {"main", "pool"} else None

        body = wait_for(both_roles, timeout_s=30, what="reports from the worker's main and pool processes")
    assert body["errors"] == {}
    pool = next(w for w in body["workers"] if w["role"] == "pool")
    assert pool["process"]["rss_bytes"] > 100 * 1024 * 1024  # torch and the models are loaded
    assert pool["process"]["pid"] != next(w for w in body["workers"] if w["role"] == "main")["process"]["pid"]
    assert pool["gpu"] is None  # this machine has no GPU; on one, torch's memory figures appear here
    assert 0 <= pool["age_s"] < 10
    assert pool["host"]["memory_total_bytes"] > 0 and pool["host"]["cpu_count"] >= 1
    assert set(body["queues"]) == {"probe", "analyze", "webhooks", "maintenance"}
    assert set(body["queues"]["analyze"]["by_priority"]) == {"0", "3", "6", "9"}
    assert body["api"]["process"]["rss_bytes"] > 0


# --- explanations and statistics -----------------------------------------------------------------


def test_explanations_are_stored_beside_the_video_and_tenant_scoped(
    stack: Stack, finished: dict[str, Any]
) -> None:
    job_id, headers = finished["job"]["id"], finished["headers"]
    assert finished["job"]["links"]["explanations"] == f"/v1/jobs/{job_id}/explanations"
    with stack.client(headers) as client:
        ranked = client.get(f"/v1/jobs/{job_id}/explanations").json()["items"]
        everything = client.get(f"/v1/jobs/{job_id}/explanations", params={"all": "true"}).json()["items"]
        frames = client.get(f"/v1/jobs/{job_id}/frames", params={"limit": 500}).json()["items"]
        heatmap = client.get(ranked[0]["heatmap_url"])
        crop = client.get(ranked[0]["crop_url"])
        statistics = client.get(f"/v1/jobs/{job_id}/statistics")
    # The job's top k faces by score, ranked; each segment explained its own top k.
    assert [item["rank"] for item in ranked] == list(range(1, EXPLAIN_TOP_K + 1))
    all_scores = sorted((face["score"] for frame in frames for face in frame["faces"]), reverse=True)
    assert [item["score"] for item in ranked] == pytest.approx(all_scores[:EXPLAIN_TOP_K])
    assert len(everything) > len(ranked) and all(item["track"] is not None for item in everything)
    assert heatmap.status_code == crop.status_code == 200
    assert heatmap.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(heatmap.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (128, 128, 3)
    assert heatmap.content != crop.content

    # Beside the video in storage: the source, each heatmap and crop, and statistics.json.
    tenant = stack.tenant_id(headers)
    with stack.session() as session:
        video_id = session.get_one(Job, uuid.UUID(job_id)).video_id
    keys = stack.stored_keys(f"videos/{tenant}/{video_id}/")
    names = {key.rsplit(f"{video_id}/", 1)[1] for key in keys}
    assert "source" in names and "statistics.json" in names
    assert sum(name.endswith(".heatmap.jpg") for name in names) == len(everything)
    assert sum(name.endswith(".crop.jpg") for name in names) == len(everything)

    assert statistics.status_code == 200
    document = statistics.json()
    assert document["stored_at"].endswith(f"{video_id}/statistics.json")
    assert document["input"]["width"] == 320 and document["input"]["codec"] == "h264"
    assert 0 < document["input"]["brightness_pct"] < 100
    assert document["input"]["face_frame_ratio"] == pytest.approx(1.0)
    assert document["output"]["verdict"] == finished["job"]["verdict"]
    assert len(document["segments"]) == 3

    # Another tenant sees none of it.
    other = stack.new_key()
    with stack.client(other) as client:
        for path in (
            f"/v1/jobs/{job_id}/explanations",
            ranked[0]["heatmap_url"],
            f"/v1/jobs/{job_id}/statistics",
        ):
            response = client.get(path)
            assert response.status_code == 404 and response.json()["error"]["code"] == "job_not_found", path
    with stack.client(headers) as client:
        missing = client.get(f"/v1/jobs/{job_id}/explanations/999999999/heatmap.jpg")
        wrong_kind = client.get(f"{ranked[0]['heatmap_url'].rsplit('/', 1)[0]}/source.jpg")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "explanation_not_found"
    assert wrong_kind.status_code == 422


def test_worker_log_lines_carry_job_segment_and_attempt(stack: Stack, finished: dict[str, Any]) -> None:
    job_id = finished["job"]["id"]
    lines = []
    for raw in stack.worker.log_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    analyze = [line for line in lines if str(line.get("event", "")).startswith("job.analyze.")]
    mine = [line for line in analyze if line.get("job_id") == job_id]
    assert len(mine) >= 6  # started and succeeded for each of three segments
    for line in mine:
        assert line.get("segment") in (0, 1, 2), line
        if line["event"] == "job.analyze.skipped":
            # A re-sent message for a segment already done or claimed: nothing was claimed, so
            # there is no attempt to name, only why it was skipped.
            assert line.get("reason"), line
        else:
            assert isinstance(line.get("attempt"), int), line
    # Lines outside our own code (the pipeline's, Celery's) carry the task's job and segment too.
    pipeline = [
        line
        for line in lines
        if line.get("event") == "pipeline.segment.done" and line.get("job_id") == job_id
    ]
    assert len(pipeline) == 3 and all("attempt" in line for line in pipeline)
    celery_done = [
        line
        for line in lines
        if line.get("logger", "").startswith("celery")
        and "succeeded" in str(line.get("event"))
        and line.get("job_id") == job_id
    ]
    assert {line.get("segment") for line in celery_done} >= {0, 1, 2}


# --- drift ---------------------------------------------------------------------------------------


def _insert_stream(stack: Stack, tenant_id: uuid.UUID, rows: list[dict[str, Any]]) -> None:
    """Finished jobs with statistics, as a worker would leave them."""
    with stack.session() as session:
        for row in rows:
            video_id = uuid.uuid4()
            video = Video(
                id=video_id,
                tenant_id=tenant_id,
                owned=True,
                filename="synthetic.mp4",
                storage_key=f"videos/{tenant_id}/{video_id}/source",
            )
            job = Job(
                tenant_id=tenant_id,
                video=video,
                status="succeeded",
                verdict=row["verdict"],
                score=row["score"],
                finished_at=row["finished_at"],
            )
            session.add(job)
            session.flush()
            session.add(JobStatistics(job_id=job.id, tenant_id=tenant_id, **row))
        session.commit()


def _stream(
    rng: np.random.Generator, n: int, *, start: datetime, span: timedelta, brightness: float, sharpness: float
) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        fake = bool(rng.random() < 0.3)
        rows.append(
            {
                "finished_at": start + span * (i + 0.5) / n,
                "frames_sampled": 32,
                "faces": 30,
                "brightness_pct": float(rng.normal(brightness, 6.0)),
                "histogram_mean": float(rng.normal(brightness * 2.55, 15.0)),
                "histogram_std": float(rng.normal(50.0, 6.0)),
                "histogram_variance": float(rng.normal(2500.0, 300.0)),
                "sharpness": float(rng.lognormal(np.log(sharpness), 0.3)),
                "face_sharpness": float(rng.lognormal(np.log(sharpness / 3), 0.3)),
                "face_size_px": float(rng.normal(160.0, 30.0)),
                "face_size_ratio": float(rng.normal(0.3, 0.05)),
                "faces_per_frame": 1.0,
                "face_frame_ratio": float(rng.uniform(0.9, 1.0)),
                "width": int(rng.choice([640, 1280])),
                "height": 720,
                "fps": 30.0,
                "duration_s": float(rng.uniform(5, 60)),
                "codec": "h264",
                "score": float(rng.beta(5, 2) if fake else rng.beta(2, 5)),
                "verdict": "fake" if fake else "real",
                "no_face": False,
            }
        )
    return rows


def test_drift_flags_a_shifted_stream_and_not_an_unshifted_one(stack: Stack) -> None:
    rng = np.random.default_rng(2024)
    now = datetime.now(UTC)
    reference_start, reference_span = now - timedelta(days=6), timedelta(days=4)
    recent_start, recent_span = now - timedelta(hours=20), timedelta(hours=19)
    steady, shifted = stack.new_key(), stack.new_key()
    for headers, recent_brightness, recent_sharpness in ((steady, 45.0, 300.0), (shifted, 25.0, 80.0)):
        rows = _stream(rng, 150, start=reference_start, span=reference_span, brightness=45.0, sharpness=300.0)
        rows += _stream(
            rng,
            80,
            start=recent_start,
            span=recent_span,
            brightness=recent_brightness,
            sharpness=recent_sharpness,
        )
        _insert_stream(stack, stack.tenant_id(headers), rows)

    with stack.client(steady) as client:
        calm = client.get("/v1/monitoring/drift", params={"window": "24h", "reference": "7d"})
    with stack.client(shifted) as client:
        moved = client.get("/v1/monitoring/drift", params={"window": "24h", "reference": "7d"})
        everyone = client.get("/v1/monitoring/drift", params={"scope": "all"})
    assert calm.status_code == moved.status_code == 200, calm.text
    calm_report, moved_report = calm.json(), moved.json()
    assert calm_report["scope"] == "tenant" and calm_report["window"] == "1d"
    assert (calm_report["recent"]["jobs"], calm_report["reference"]["jobs"]) == (80, 150)
    assert calm_report["drifted"] == []
    assert set(moved_report["drifted"]) == {"brightness_pct", "histogram_mean", "sharpness", "face_sharpness"}
    features = {f["feature"]: f for f in moved_report["features"]}
    assert features["brightness_pct"]["psi"] > 1.0 and features["brightness_pct"]["p_value"] < 1e-6
    assert features["brightness_pct"]["recent"]["mean"] < features["brightness_pct"]["reference"]["mean"] - 10
    assert features["codec"]["status"] == "ok" and features["codec"]["test"] == "chi2"
    assert everyone.status_code == 403 and everyone.json()["error"]["code"] == "admin_required"

    # An admin sees every tenant: the shifted stream shows through the mix, in the route and in
    # the gauges Prometheus scrapes (default windows: the last 24 h against the 7 days before).
    admin = stack.new_key(admin=True)
    with stack.client(admin) as client:
        overall = client.get("/v1/monitoring/drift").json()
        text = client.get("/metrics").text
    assert overall["scope"] == "all" and "brightness_pct" in overall["drifted"]
    assert _metric(text, "deepfakestream_drift_flagged", feature="brightness_pct") == 1.0
    assert _metric(text, "deepfakestream_drift_flagged", feature="codec") == 0.0
    assert _metric(text, "deepfakestream_drift_psi", feature="brightness_pct") > 0.2
    assert _metric(text, "deepfakestream_drift_window_jobs", window="recent") >= 160


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"window": "abc"}, "invalid_window"),
        ({"reference": "0h"}, "invalid_window"),
        ({"window": "400d"}, "invalid_window"),
    ],
)
def test_drift_refuses_bad_windows(stack: Stack, params: dict[str, str], code: str) -> None:
    with stack.client(stack.new_key()) as client:
        response = client.get("/v1/monitoring/drift", params=params)
    assert response.status_code == 422 and response.json()["error"]["code"] == code


def test_page_is_served_at_the_root(stack: Stack) -> None:
    with stack.client() as client:
        page = client.get("/")
        script = client.get("/web/app.js")
        missing = client.get("/web/nope.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/web/app.js">' in page.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
