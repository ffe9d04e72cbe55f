"""A job's verdict for people and its HTML report, end to end in one process: the API stores an
uploaded video (real PostgreSQL, a storage directory), the worker's stages analyse it with a real
checkpoint that carries an inconclusive band and a caveat, and the API answers the job and its
report from what was stored."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.config import Settings, load_settings
from core.db import get_session_factory
from core.keys import create_api_key
from core.models import Job
from pipeline.analyzer import Analyzer
from tests.conftest import make_random_checkpoint
from tests.utils.media import FaceVideo
from tests.utils.platform import REDIS_URL, clear_broker_keys, fresh_database, make_small_video
from worker.analyze import analyze_segment
from worker.probe import probe_job
from worker.runtime import WorkerContext, analysis_config, build_context

pytestmark = pytest.mark.integration

TOP_K = 3
CAVEAT = "Trained on synthetic test faces only; it knows nothing about real manipulations."
# Every score of the random model falls inside [0, 1): each video with a face is inconclusive.
BAND = (0.0, 1.0)


@pytest.fixture(scope="module")
def banded_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_random_checkpoint(
        tmp_path_factory.mktemp("banded-model") / "banded.safetensors",
        inconclusive_band=BAND,
        caveat=CAVEAT,
        name="banded-test",
        version="9.9.9",
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, banded_checkpoint: Path) -> Iterator[Settings]:
    prefix = f"dfs-test-report-{secrets.token_hex(4)}:"
    with fresh_database() as url:
        yield load_settings(
            environment="test",
            database_url=url,
            broker_url=REDIS_URL,
            broker_key_prefix=prefix,
            storage_url=tmp_path_factory.mktemp("storage").as_uri(),
            work_dir=tmp_path_factory.mktemp("work"),
            model_path=banded_checkpoint,
            device="cpu",
            default_segment_seconds=1.0,
            default_sample_fps=3.0,
            explain_top_k=TOP_K,
        )
    clear_broker_keys(prefix)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def worker(settings: Settings) -> WorkerContext:
    analyzer = Analyzer(model_path=settings.model_path, device="cpu", config=analysis_config(settings))
    ctx = build_context(settings, hostname="report@test")

    def analyzer_for(options: dict[str, Any]) -> Analyzer:
        view = Analyzer.__new__(Analyzer)
        view.__dict__.update(analyzer.__dict__)
        view.config = analysis_config(settings, options)
        return view

    return dataclasses.replace(ctx, analyzer_for=analyzer_for)


def _key(settings: Settings) -> dict[str, str]:
    with get_session_factory(settings)() as session:
        created = create_api_key(session, tenant_name=f"report-{secrets.token_hex(4)}")
    return {"Authorization": f"Bearer {created.key}"}


def _submit(client: TestClient, headers: dict[str, str], video: Path) -> dict[str, Any]:
    with video.open("rb") as handle:
        response = client.post("/v1/jobs", headers=headers, files={"file": (video.name, handle, "video/mp4")})
    assert response.status_code == 202, response.text
    return dict(response.json())


def _run(worker: WorkerContext, job_id: str) -> None:
    """The worker's stages, as the queue would run them: probe, then every planned segment."""
    job_uuid = uuid.UUID(job_id)
    assert probe_job(worker, job_id=job_uuid) == "planned"
    with worker.session() as session:
        total = session.get_one(Job, job_uuid).segments_total or 0
    outcomes = [analyze_segment(worker, job_id=job_uuid, segment_index=i) for i in range(total)]
    assert outcomes[-1] == "finalized", outcomes


@pytest.fixture(scope="module")
def finished(
    settings: Settings, client: TestClient, worker: WorkerContext, face_clip: FaceVideo
) -> dict[str, Any]:
    headers = _key(settings)
    created = _submit(client, headers, face_clip.path)
    report_before = client.get(f"/v1/jobs/{created['id']}/report", headers=headers)
    _run(worker, created["id"])
    return {"headers": headers, "job_id": created["id"], "report_before": report_before}


def test_a_score_inside_the_band_is_inconclusive_with_its_reasons(
    client: TestClient, finished: dict[str, Any], settings: Settings
) -> None:
    job = client.get(f"/v1/jobs/{finished['job_id']}", headers=finished["headers"]).json()

    assert job["status"] == "succeeded"
    assert job["verdict"] == "inconclusive" and job["verdict_label"] == "Inconclusive"
    assert 0.0 <= job["score"] < 1.0
    assert job["model"] == {
        "name": "banded-test",
        "version": "9.9.9",
        "sha256": job["model"]["sha256"],
        "trained": False,
        "caveat": CAVEAT,
        "threshold": 0.5,
        "inconclusive_band": list(BAND),
        "aggregation": "mean",
    }
    explanation = job["explanation"]
    assert "average, over every sampled frame" in explanation
    assert (
        f"P(fake) {job['score']:.3f}" in explanation
        and "inside the inconclusive band 0.000–1.000" in explanation
    )
    assert job["links"]["report"] == f"/v1/jobs/{job['id']}/report"
    # What the verdict was decided with is kept on the row, so the answer outlives the model.
    with get_session_factory(settings)() as session:
        row = session.get_one(Job, uuid.UUID(job["id"]))
    assert (row.inconclusive_low, row.inconclusive_high, row.model_caveat) == (*BAND, CAVEAT)
    assert row.analysis_settings is not None and row.analysis_settings["sample_fps"] == 3.0


def test_report_is_a_download_with_provenance_and_the_pages_faces(
    client: TestClient, finished: dict[str, Any], face_clip: FaceVideo
) -> None:
    headers, job_id = finished["headers"], finished["job_id"]
    response = client.get(f"/v1/jobs/{job_id}/report", headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="deepfakestream-report-{job_id}.html"'
    )
    document = response.text
    assert document.startswith("<!DOCTYPE html>")
    assert 'data-verdict="inconclusive">Inconclusive</p>' in document
    assert CAVEAT in document and "banded-test 9.9.9" in document
    assert hashlib.sha256(face_clip.path.read_bytes()).hexdigest() in document
    assert face_clip.path.name in document and f"({face_clip.path.stat().st_size} bytes)" in document
    assert "sample_fps 3.0" in document and "aggregation mean" in document
    assert "inconclusive band 0.000–1.000" in document and "<svg" in document
    # Self-contained: nothing is fetched from anywhere.
    assert "https://" not in document and "http://" not in document.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )

    # The faces are the page's "most suspicious faces": the ranked explanations, same images.
    explained = client.get(f"/v1/jobs/{job_id}/explanations", headers=headers).json()["items"]
    assert len(explained) == TOP_K
    crops = re.findall(r'<img class="crop" alt="[^"]*" src="data:image/jpeg;base64,([^"]+)"', document)
    heatmaps = re.findall(r'<img class="heatmap" alt="[^"]*" src="data:image/jpeg;base64,([^"]+)"', document)
    assert len(crops) == len(heatmaps) == TOP_K
    for item, crop, heatmap in zip(explained, crops, heatmaps, strict=True):
        assert base64.b64decode(crop) == client.get(item["crop_url"], headers=headers).content
        assert base64.b64decode(heatmap) == client.get(item["heatmap_url"], headers=headers).content
    captions = re.findall(r"<figcaption>P\(fake\) (0\.\d{3})", document)
    assert captions == [f"{item['score']:.3f}" for item in explained]


def test_report_waits_for_the_job_and_stays_within_the_tenant(
    client: TestClient, finished: dict[str, Any], settings: Settings
) -> None:
    before = finished["report_before"]
    assert before.status_code == 409
    assert before.json()["error"]["code"] == "job_not_finished"
    other = client.get(f"/v1/jobs/{finished['job_id']}/report", headers=_key(settings))
    assert other.status_code == 404 and other.json()["error"]["code"] == "job_not_found"
    missing = client.get(f"/v1/jobs/{uuid.uuid4()}/report", headers=finished["headers"])
    assert missing.status_code == 404


def test_no_face_says_what_to_try_and_draws_no_plot(
    settings: Settings, client: TestClient, worker: WorkerContext, tmp_path: Path
) -> None:
    headers = _key(settings)
    video = make_small_video(tmp_path / "pattern.mp4", seconds=1.0, size="160x120")
    created = _submit(client, headers, video)
    _run(worker, created["id"])

    job = client.get(f"/v1/jobs/{created['id']}", headers=headers).json()
    assert job["verdict"] == "no_face" and job["verdict_label"] == "No face found"
    assert job["score"] is None
    assert "No face was found" in job["explanation"] and "Try a clip" in job["explanation"]
    document = client.get(f"/v1/jobs/{created['id']}/report", headers=headers).text
    assert 'data-verdict="no_face">No face found</p>' in document
    assert "<svg" not in document and "No score to plot" in document
    assert "— px" not in document
    with get_session_factory(settings)() as session:
        stored = session.scalar(select(Job.verdict).where(Job.id == uuid.UUID(created["id"])))
    assert stored == "no_face"
