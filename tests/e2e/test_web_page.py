"""The page at ``/`` in a real browser: enter a key, upload a generated video with the progress
bar, watch the job, and read its verdict (in words, with its probability), score chart, suspicious
faces with heatmaps and segment scores off the page; the jobs list updates live; a batch shows its
counts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import SOURCE_BUCKET, enter_key
from tests.utils.media import make_face_video
from tests.utils.stack import Stack

pytestmark = pytest.mark.e2e

JOB_TIMEOUT_MS = 180_000
# What the page says for each verdict when the API sends no verdict_label of its own.
VERDICT_WORDS = {
    "fake": "Signs of manipulation",
    "real": "No signs of manipulation found by this model",
    "inconclusive": "Inconclusive",
    "no_face": "No face found",
}


def _words(job: dict[str, Any]) -> str:
    return str(job.get("verdict_label") or VERDICT_WORDS[job["verdict"]])


def _all(client: httpx.Client, path: str) -> list[dict[str, Any]]:
    response = client.get(path, params={"limit": 500})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_upload_and_read_the_verdict_off_the_page(
    stack: Stack, page: Page, tmp_path: Path, shots: Path
) -> None:
    video = make_face_video(tmp_path / "browser-upload.mp4", seconds=2.0, width=320, height=240, fps=10.0)
    headers = stack.new_key()
    enter_key(page, stack, headers)
    # Nothing of the upload's progress shows before there is an upload.
    expect(page.get_by_test_id("upload-status")).to_be_hidden()
    expect(page.get_by_test_id("upload-percent")).to_be_hidden()

    page.set_input_files("#upload-file", str(video.path))
    page.click("#upload-button")
    page.wait_for_url(re.compile(r".*#/jobs/[0-9a-f-]{36}$"), timeout=30_000)
    job_id = page.url.rsplit("/", 1)[1]
    # The upload's progress bar ran to the end before the page moved to the job.
    assert page.eval_on_selector("#upload-progress", "node => node.value") == 100
    expect(page.get_by_test_id("upload-percent")).to_have_text("100%")

    page.wait_for_function("id => document.body.dataset.jobLoaded === id", arg=job_id, timeout=JOB_TIMEOUT_MS)
    page.screenshot(path=str(shots / "job.png"), full_page=True)
    screenshot = (shots / "job.png").read_bytes()
    assert screenshot.startswith(b"\x89PNG") and len(screenshot) > 20_000

    with stack.client(headers) as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
        frames = _all(client, f"/v1/jobs/{job_id}/frames")
        segments = _all(client, f"/v1/jobs/{job_id}/segments")
        explanations = client.get(f"/v1/jobs/{job_id}/explanations").json()["items"]
    assert job["status"] == "succeeded" and job["verdict"] in ("fake", "real", "inconclusive")

    # The verdict in words, and the probability with the threshold it was compared with.
    verdict = page.get_by_test_id("verdict")
    expect(verdict).to_have_text(_words(job))
    expect(verdict).to_have_attribute("data-verdict", job["verdict"])
    expect(page.get_by_test_id("score")).to_contain_text(f"P(fake) {job['score']:.3f}")
    expect(page.get_by_test_id("score")).to_contain_text(f"threshold {job['threshold']:.3f}")
    marker = page.locator("[data-testid=score-scale] .marker")
    expect(marker).to_have_attribute("data-score", str(job["score"]))
    expect(page.get_by_test_id("explanation")).to_be_visible()
    # The model that scored it, by name and version.
    expect(page.get_by_test_id("job-model")).to_have_text(f"{job['model']['name']} {job['model']['version']}")
    expect(page.get_by_test_id("job-report")).to_be_visible()
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded")
    expect(page.get_by_test_id("job-id")).to_have_text(job_id)
    # A random-weights checkpoint says so.
    expect(page.locator("#job-untrained")).to_be_visible()

    # Score over time: one dot per frame with a score, and the threshold line.
    scored = [f for f in frames if f["score"] is not None]
    assert len(scored) >= 3
    expect(page.locator("[data-testid=score-chart] circle.frame-point")).to_have_count(len(scored))
    expect(page.locator("[data-testid=score-chart] line.threshold")).to_have_count(1)
    expect(page.locator("[data-testid=score-chart] text.y-label")).to_have_text("P(fake)")
    # One visible bar per scored segment: as wide as the segment, as tall as its score.
    bars = page.locator("[data-testid=score-chart] rect.segment-bar")
    expect(bars).to_have_count(sum(1 for s in segments if s["score"] is not None))
    plot = page.locator("[data-testid=score-chart] rect.plot").bounding_box()
    assert plot is not None
    for segment, bar in zip([s for s in segments if s["score"] is not None], bars.all(), strict=True):
        box = bar.bounding_box()
        assert box is not None and box["width"] > 10, box
        assert box["height"] == pytest.approx(plot["height"] * segment["score"], abs=2.5), (box, segment)

    # Suspicious faces: the job's ranked explanations, each with its crop and heatmap loaded.
    assert explanations, "the worker stored no explanation"
    faces = page.locator("[data-testid=faces] figure.face")
    expect(faces).to_have_count(len(explanations))
    loaded = page.eval_on_selector_all(
        "[data-testid=faces] img", "images => images.map(i => i.complete && i.naturalWidth)"
    )
    assert len(loaded) == 2 * len(explanations) and all(width == 128 for width in loaded), loaded
    first_caption = faces.first.locator("figcaption").inner_text()
    assert f"P(fake) {explanations[0]['score']:.3f}" in first_caption

    # Per-segment scores.
    rows = page.locator("[data-testid=segments-table] tbody tr")
    expect(rows).to_have_count(len(segments))
    shown = page.locator("[data-testid=segments-table] td.segment-score").all_inner_texts()
    assert shown == [f"{s['score']:.3f}" if s["score"] is not None else "—" for s in segments]

    # Input statistics.
    expect(page.locator("[data-testid=statistics] td[data-statistic=brightness_pct]")).to_contain_text("%")

    # The jobs list shows the finished job with its verdict.
    page.click("text=← all jobs")
    row = page.locator(f"[data-testid=jobs-table] tr[data-job-id='{job_id}']")
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(row).to_contain_text(_words(job))


def test_jobs_list_updates_live(stack: Stack, page: Page, tmp_path: Path, shots: Path) -> None:
    headers = stack.new_key()
    enter_key(page, stack, headers)
    expect(page.locator("#jobs-empty")).to_be_visible()
    video = make_face_video(tmp_path / "live.mp4", seconds=1.0, width=320, height=240, fps=10.0)
    # Submitted elsewhere (the REST API), while the page just sits there.
    job_id = stack.submit(headers, video.path)["id"]
    row = page.locator(f"[data-testid=jobs-table] tr[data-job-id='{job_id}']")
    expect(row).to_be_visible(timeout=10_000)
    expect(row).to_have_attribute("data-status", "succeeded", timeout=JOB_TIMEOUT_MS)
    page.screenshot(path=str(shots / "jobs.png"))
    assert (shots / "jobs.png").stat().st_size > 5_000


def test_batch_view_shows_its_counts(stack: Stack, page: Page, tmp_path: Path, shots: Path) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=SOURCE_BUCKET)
    video = make_face_video(tmp_path / "batch.mp4", seconds=1.0, width=320, height=240, fps=10.0)
    for name in ("a.mp4", "b.mp4"):
        s3.put_object(Bucket=SOURCE_BUCKET, Key=f"batch/{name}", Body=video.path.read_bytes())
    headers = stack.new_key()
    with stack.client(headers) as client:
        response = client.post(
            "/v1/batches",
            json={
                "name": "browser batch",
                "items": [
                    {"source": f"s3://{SOURCE_BUCKET}/batch/a.mp4", "external_id": "a"},
                    {"source": f"s3://{SOURCE_BUCKET}/batch/b.mp4", "external_id": "b"},
                ],
            },
        )
    assert response.status_code == 202, response.text
    batch_id = response.json()["id"]

    enter_key(page, stack, headers)
    page.goto(f"{stack.base_url}/#/batches")
    expect(page.locator("[data-testid=batches-table]")).to_contain_text("browser batch")
    page.goto(f"{stack.base_url}/#/batches/{batch_id}")
    expect(page.get_by_test_id("batch-id")).to_have_text(batch_id)
    expect(page.get_by_test_id("batch-status")).to_have_text("completed", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#count-succeeded")).to_have_text("2")
    for name in ("queued", "processing", "failed", "canceled"):
        expect(page.locator(f"#count-{name}")).to_have_text("0")
    with stack.client(headers) as client:
        batch = client.get(f"/v1/batches/{batch_id}").json()
    for verdict in ("fake", "real", "no_face"):
        expect(page.locator(f"#count-{verdict}")).to_have_text(str(batch["verdicts"][verdict]))
    expect(page.locator("#batch-jobs-body tr")).to_have_count(2)
    page.screenshot(path=str(shots / "batch.png"), full_page=True)


def test_a_wrong_key_is_refused_on_the_page(stack: Stack, page: Page) -> None:
    page.goto(stack.base_url + "/")
    page.fill("#api-key", "dfs_00000000_not-a-real-key")
    page.click("#key-form button[type=submit]")
    expect(page.get_by_test_id("error")).to_contain_text("invalid_api_key")
    expect(page.get_by_test_id("key-status")).to_have_text("no key")
    expect(page.locator("#view-nokey")).to_be_visible()
