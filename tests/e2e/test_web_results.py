"""What the page tells a person, in a real browser against the real stack: an inconclusive result
with its band, the model's caveat and the aggregation note; the no-face advice with no empty plot;
a failed job's code and message; upload errors that stay until dismissed; cancel and delete; a
batch whose items all failed, with its error column and exports; the phone layout; the favicon.

Screenshots go to $E2E_SCREENSHOTS when it is set, to be looked at."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from core.heatmaps import legend_stops
from tests.e2e.conftest import SOURCE_BUCKET, enter_key
from tests.e2e.test_web_report import legend_colours
from tests.utils.media import make_bad_media
from tests.utils.stack import Stack
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.e2e

JOB_TIMEOUT_MS = 180_000
CAVEAT = "Trained on DFDC face swaps; may miss lip-sync and fully generated faces."


@pytest.fixture(scope="module")
def finished(stack: Stack) -> tuple[dict[str, str], dict[str, Any]]:
    """A key and a succeeded job with faces, shared by the tests that only read it."""
    headers = stack.new_key()
    video = stack.face_video(f"finished-{uuid.uuid4().hex[:6]}.mp4", seconds=2.0)
    job = stack.wait_job(headers, stack.submit(headers, video.path)["id"])
    assert job["status"] == "succeeded", job
    return headers, job


def _open_job(page: Page, stack: Stack, headers: dict[str, str], job_id: str) -> None:
    enter_key(page, stack, headers)
    page.goto(f"{stack.base_url}/#/jobs/{job_id}")
    page.wait_for_function("id => document.body.dataset.jobLoaded === id", arg=job_id, timeout=JOB_TIMEOUT_MS)


def _no_horizontal_scroll(page: Page) -> None:
    """Neither the page nor any of its tables scrolls sideways (nothing is cut off)."""
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
    clipped = page.eval_on_selector_all(
        ".table-wrap",
        "wraps => wraps.filter(w => w.offsetParent !== null && w.scrollWidth > w.clientWidth + 1)"
        ".map(w => w.querySelector('table').dataset.testid)",
    )
    assert clipped == [], f"tables wider than the screen: {clipped}"


def _rgb(page: Page, selector: str, prop: str) -> tuple[int, ...]:
    value = page.eval_on_selector(selector, f"node => getComputedStyle(node).{prop}")
    return tuple(int(part) for part in re.findall(r"\d+", value)[:3])


def _is_green(rgb: tuple[int, ...]) -> bool:
    red, green, blue = rgb
    return green > red + 30 and green > blue + 30


def test_inconclusive_result_shows_band_caveat_and_aggregation(
    stack: Stack, page: Page, finished: tuple[dict[str, str], dict[str, Any]], shots: Path
) -> None:
    headers, job = finished
    with stack.client(headers) as client:
        faces = client.get(f"/v1/jobs/{job['id']}/explanations").json()["items"]
    assert faces, "the worker stored no explanation"
    # A model whose threshold sits just under the top face's score, with the video's score
    # inside the band: the answer the API gives for such a model, whatever this one stores.
    threshold = round(min(job["score"], faces[0]["score"]) - 0.01, 4)
    band = [round(threshold - 0.05, 4), round(max(job["score"], threshold) + 0.05, 4)]

    def inconclusive(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        body.pop("verdict_label", None)
        body.pop("explanation", None)
        body.update(verdict="inconclusive", threshold=threshold)
        body["model"] = {
            **body["model"],
            "threshold": threshold,
            "inconclusive_band": band,
            "caveat": CAVEAT,
            "aggregation": "mean",
        }
        route.fulfill(response=response, json=body)

    page.route(re.compile(rf".*/v1/jobs/{job['id']}$"), inconclusive)
    _open_job(page, stack, headers, job["id"])

    verdict = page.get_by_test_id("verdict")
    expect(verdict).to_have_text("Inconclusive")
    assert not _is_green(_rgb(page, "#job-verdict", "color"))
    score = page.get_by_test_id("score")
    expect(score).to_contain_text(f"P(fake) {job['score']:.3f}")
    expect(score).to_contain_text(f"threshold {threshold:.3f}")
    expect(score).to_contain_text(f"inconclusive between {band[0]:.3f} and {band[1]:.3f}")
    expect(page.get_by_test_id("explanation")).to_contain_text("cannot tell")
    # The band on the score bar and on the chart.
    expect(page.locator("[data-testid=score-scale] .band")).to_have_count(1)
    expect(page.locator("[data-testid=score-chart] rect.band")).to_have_count(1)
    # The model, its version and its caveat.
    model = job["model"]
    expect(page.get_by_test_id("job-model")).to_have_text(f"{model['name']} {model['version']}")
    expect(page.get_by_test_id("model-caveat")).to_have_text(CAVEAT)
    # A face above the threshold under a verdict that is not "fake" comes with the aggregation.
    note = page.get_by_test_id("aggregation-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("above the threshold")
    expect(note).to_contain_text("aggregation: mean")
    expect(page.locator("[data-testid=faces] figure.face.above").first).to_be_visible()
    # The heatmaps' one colour scale, with its ends labelled, in the colours the worker draws.
    legend = page.get_by_test_id("heatmap-legend")
    expect(legend).to_be_visible()
    expect(legend.locator(".heat-end.lo")).to_have_text("0 no evidence")
    expect(legend.locator(".heat-end.hi")).to_have_text("1 strongest (P(fake) 1)")
    assert legend_colours(page, "[data-testid=heatmap-legend] .heat-bar") == [c for _, c in legend_stops()]
    page.screenshot(path=str(shots / "inconclusive-desktop.png"), full_page=True)


def test_no_manipulation_near_the_threshold_is_called_uncertain(
    stack: Stack, page: Page, finished: tuple[dict[str, str], dict[str, Any]], shots: Path
) -> None:
    headers, job = finished
    # A model without a band whose threshold sits just above this score; then the same answer
    # with the API's own explanation, which the page shows in place of its words.
    answer: dict[str, Any] = {"verdict": "real", "threshold": round(job["score"] + 0.01, 4)}

    def no_manipulation(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        for field in ("verdict_label", "explanation", "inconclusive_band"):
            body.pop(field, None)
        body.update(answer)
        body["model"] = {
            **body["model"],
            "threshold": answer["threshold"],
            "inconclusive_band": None,
            "caveat": CAVEAT,
        }
        route.fulfill(response=response, json=body)

    page.route(re.compile(rf".*/v1/jobs/{job['id']}$"), no_manipulation)
    _open_job(page, stack, headers, job["id"])
    verdict = page.get_by_test_id("verdict")
    expect(verdict).to_have_text("No signs of manipulation found by this model")
    expect(verdict).to_have_attribute("data-confidence", "low")
    assert not _is_green(_rgb(page, "#job-verdict", "color"))
    size = float(page.eval_on_selector("#job-verdict", "node => parseFloat(getComputedStyle(node).fontSize)"))
    assert size <= 24, size
    explanation = page.get_by_test_id("explanation")
    expect(explanation).to_contain_text("not proof that the video is authentic")
    expect(explanation).to_contain_text("close to the threshold")
    expect(page.locator("[data-testid=score-scale] .band")).to_have_count(0)
    # The model's limits right under the explanation, at the size of the text around it and
    # dark, not small grey print in the facts table.
    limits = page.get_by_test_id("model-limits")
    expect(limits).to_be_visible()
    expect(limits).to_contain_text(f"Limits of this model: {CAVEAT}")
    caveat_size = float(
        page.eval_on_selector("#job-limits", "node => parseFloat(getComputedStyle(node).fontSize)")
    )
    assert caveat_size >= 14, caveat_size
    assert max(_rgb(page, "#job-limits", "color")) < 80, _rgb(page, "#job-limits", "color")
    assert page.evaluate(
        "() => document.getElementById('job-explanation').nextElementSibling.id === 'job-limits'"
    )
    page.screenshot(path=str(shots / "real-near-threshold.png"), full_page=True)

    answer["explanation"] = "The video's score is the mean of its frames' scores.\nSee the faces below."
    page.reload()
    page.wait_for_function(
        "id => document.body.dataset.jobLoaded === id", arg=job["id"], timeout=JOB_TIMEOUT_MS
    )
    expect(explanation.locator("p")).to_have_text(
        ["The video's score is the mean of its frames' scores.", "See the faces below."]
    )
    expect(page.get_by_test_id("aggregation-note")).to_be_hidden()


def test_a_running_job_shows_the_time_left(
    stack: Stack, page: Page, finished: tuple[dict[str, str], dict[str, Any]], shots: Path
) -> None:
    headers, job = finished
    # The job as it looked while it ran: 1 of 3 segments scored 20 s after it started.
    running: dict[str, Any] = {"done": 1, "started_s_ago": 20.0}

    def in_progress(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        started = datetime.now(UTC) - timedelta(seconds=running["started_s_ago"])
        body.update(
            status="processing",
            verdict=None,
            verdict_label=None,
            explanation=None,
            score=None,
            finished_at=None,
            started_at=started.isoformat(),
            progress={"segments_done": running["done"], "segments_total": 3},
        )
        route.fulfill(response=response, json=body)

    page.route(re.compile(rf".*/v1/jobs/{job['id']}$"), in_progress)
    # No event stream for this pretend run: the page polls the (rewritten) job instead.
    page.route(re.compile(rf".*/v1/jobs/{job['id']}/events/token$"), lambda route: route.abort())
    enter_key(page, stack, headers)
    page.goto(f"{stack.base_url}/#/jobs/{job['id']}")
    eta = page.get_by_test_id("job-eta")
    # 20 s for one segment, two to go: about 40 s left.
    expect(eta).to_have_text(re.compile(r"^· about 4\d s left$"))
    expect(page.locator("#job-progress-text")).to_have_text("1 of 3 segments")
    page.screenshot(path=str(shots / "running-eta.png"))

    running.update(done=0, started_s_ago=3.0)
    expect(eta).to_have_text("· time left: estimated once the first segment is scored")
    running.update(done=2, started_s_ago=300.0)
    expect(eta).to_have_text("· about 3 min left")


def test_a_job_canceled_part_way_shows_what_was_scored(
    stack: Stack, page: Page, phone: Page, finished: tuple[dict[str, str], dict[str, Any]], shots: Path
) -> None:
    headers, job = finished

    def canceled_part_way(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        body.update(
            status="canceled",
            partial=True,
            verdict=None,
            verdict_label=None,
            explanation=None,
            score=None,
            error={"code": "canceled", "message": "canceled by the client"},
            progress={"segments_done": 1, "segments_total": 2},
        )
        route.fulfill(response=response, json=body)

    def second_segment_canceled(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        for item in body["items"][1:]:
            item.update(status="canceled", score=None)
        route.fulfill(response=response, json=body)

    for name, shown in (("desktop", page), ("phone", phone)):
        shown.route(re.compile(rf".*/v1/jobs/{job['id']}$"), canceled_part_way)
        shown.route(re.compile(rf".*/v1/jobs/{job['id']}/segments\?.*"), second_segment_canceled)
        shown.route(
            re.compile(r".*/v1/jobs\?limit=25$"),
            lambda route: route.fulfill(
                response=(response := route.fetch()),
                json={
                    **response.json(),
                    "items": [
                        {
                            **item,
                            "status": "canceled",
                            "partial": True,
                            "verdict": None,
                            "verdict_label": None,
                        }
                        for item in response.json()["items"]
                    ],
                },
            ),
        )
        enter_key(shown, stack, headers)
        row = shown.locator(f"[data-testid=jobs-table] tr[data-job-id='{job['id']}'] td.result")
        expect(row).to_have_text("canceled, partly scored")
        shown.goto(f"{stack.base_url}/#/jobs/{job['id']}")
        shown.wait_for_function(
            "id => document.body.dataset.jobLoaded === id", arg=job["id"], timeout=JOB_TIMEOUT_MS
        )
        expect(shown.get_by_test_id("verdict")).to_have_text("Canceled (partial results)")
        explanation = shown.get_by_test_id("explanation")
        expect(explanation).to_contain_text("canceled after 1 of 2 segments were scored")
        expect(explanation).to_contain_text("no verdict for the whole video")
        # What was scored stays on screen: the chart, the faces and the segments.
        expect(shown.locator("#chart-panel")).to_be_visible()
        expect(shown.locator("[data-testid=score-chart] svg")).to_have_count(1)
        expect(shown.locator("[data-testid=faces] figure").first).to_be_visible()
        expect(shown.locator("[data-testid=segments-table] tbody tr")).to_have_count(2)
        expect(shown.locator("[data-testid=segments-table] tbody tr").nth(1)).to_contain_text("canceled")
        expect(shown.get_by_test_id("aggregation-note")).to_be_hidden()
        expect(shown.get_by_test_id("job-report")).to_be_hidden()
        expect(shown.get_by_test_id("score")).to_have_text("")
        _no_horizontal_scroll(shown)
        shown.screenshot(path=str(shots / f"canceled-partial-{name}.png"), full_page=True)


def test_report_button_downloads_the_report(
    stack: Stack, page: Page, finished: tuple[dict[str, str], dict[str, Any]]
) -> None:
    headers, job = finished
    _open_job(page, stack, headers, job["id"])
    with stack.client(headers) as client:
        report = client.get(f"/v1/jobs/{job['id']}/report")
    button = page.get_by_test_id("job-report")
    expect(button).to_be_visible()
    if report.status_code == 200:
        with page.expect_download() as download_info:
            button.click()
        path = download_info.value.path()
        assert Path(path).read_bytes() == report.content
    else:
        # An API without the report route: the person is told, and the message stays.
        assert report.status_code == 404, report.text
        button.click()
        expect(page.get_by_test_id("notice")).to_contain_text("report could not be downloaded")


def test_no_face_says_what_it_means_and_draws_no_plot(
    stack: Stack, page: Page, phone: Page, shots: Path
) -> None:
    headers = stack.new_key()
    video = stack.face_video(f"no-face-{uuid.uuid4().hex[:6]}.mp4", faces=0, seconds=2.0)
    job = stack.wait_job(headers, stack.submit(headers, video.path)["id"])
    assert job["status"] == "succeeded" and job["verdict"] == "no_face", job

    for name, shown in (("desktop", page), ("phone", phone)):
        _open_job(shown, stack, headers, job["id"])
        expect(shown.get_by_test_id("verdict")).to_have_text("No face found")
        explanation = shown.get_by_test_id("explanation")
        expect(explanation).to_contain_text("No face was found")
        # What to try next, whichever side words it (the API's explanation or the page's own).
        expect(explanation).to_contain_text(re.compile(r"\btry\b", re.IGNORECASE))
        expect(shown.locator("#chart-panel")).to_be_hidden()
        expect(shown.locator("[data-testid=score-chart] svg")).to_have_count(0)
        expect(shown.locator("#faces-panel")).to_be_hidden()
        expect(shown.locator("[data-testid=statistics] td[data-statistic=face_size_px]")).to_have_text(
            "no face found"
        )
        assert "— px" not in shown.locator("main").inner_text()
        _no_horizontal_scroll(shown)
        shown.screenshot(path=str(shots / f"no-face-{name}.png"), full_page=True)


def test_failed_job_shows_its_code_and_message(stack: Stack, page: Page, tmp_path: Path, shots: Path) -> None:
    headers = stack.new_key()
    bad = make_bad_media("corrupt_header", tmp_path / "broken.mp4")
    job = stack.wait_job(headers, stack.submit(headers, bad)["id"])
    assert job["status"] == "failed" and job["error"], job
    code, message = job["error"]["code"], job["error"]["message"]

    _open_job(page, stack, headers, job["id"])
    expect(page.get_by_test_id("verdict")).to_have_text("Analysis failed")
    expect(page.get_by_test_id("score")).to_have_text(code)
    expect(page.get_by_test_id("job-error")).to_have_text(f"{message} ({code})")
    expect(page.get_by_test_id("explanation")).to_contain_text(message)
    expect(page.get_by_test_id("job-report")).to_be_hidden()
    page.screenshot(path=str(shots / "failed-job.png"), full_page=True)

    page.click("text=← all jobs")
    result = page.locator(f"[data-testid=jobs-table] tr[data-job-id='{job['id']}'] td.result")
    expect(result).to_contain_text(code)
    expect(result).to_contain_text(message)


def test_upload_error_stays_until_dismissed(stack: Stack, page: Page, tmp_path: Path, shots: Path) -> None:
    headers = stack.new_key()
    enter_key(page, stack, headers)
    expect(page.get_by_test_id("upload-status")).to_be_hidden()
    notes = make_bad_media("text", tmp_path / "notes.mp4")

    page.set_input_files("#upload-file", str(notes))
    page.click("#upload-button")
    notice = page.get_by_test_id("notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("notes.mp4")
    expect(notice).to_contain_text("unsupported_format")
    expect(page.get_by_test_id("upload-status")).to_be_hidden()  # no full bar beside a refusal
    # Two refreshes of the jobs list later, it is still there.
    updated = page.locator("#jobs-updated")
    for _ in range(2):
        before = updated.inner_text()
        expect(updated).not_to_have_text(before, timeout=10_000)
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("unsupported_format")
    page.screenshot(path=str(shots / "upload-error.png"))

    page.get_by_test_id("notice-dismiss").click()
    expect(notice).to_be_hidden()


def test_cancel_then_delete_a_job(stack: Stack, page: Page, shots: Path) -> None:
    headers = stack.new_key()
    video = stack.face_video(f"cancel-{uuid.uuid4().hex[:6]}.mp4", seconds=1.0)
    stack.pause_queue("probe")
    try:
        job_id = stack.submit(headers, video.path)["id"]
        enter_key(page, stack, headers)
        page.goto(f"{stack.base_url}/#/jobs/{job_id}")
        expect(page.get_by_test_id("job-status")).to_have_text("queued")
        expect(page.get_by_test_id("job-report")).to_be_hidden()
        page.get_by_test_id("job-cancel").click()
        expect(page.get_by_test_id("job-status")).to_have_text("canceled")
        expect(page.get_by_test_id("verdict")).to_have_text("Canceled")
        expect(page.get_by_test_id("notice")).to_contain_text("canceled")
        expect(page.get_by_test_id("job-cancel")).to_be_hidden()
    finally:
        stack.resume_queue("probe")
    assert stack.job(headers, job_id)["status"] == "canceled"
    page.screenshot(path=str(shots / "canceled-job.png"), full_page=True)

    # Delete asks first; saying no keeps the job.
    questions: list[str] = []

    def refuse(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", refuse)
    page.get_by_test_id("job-delete").click()
    for _ in range(100):
        if questions:
            break
        page.wait_for_timeout(100)  # lets the page's events, the dialog among them, through
    assert questions and "cannot be undone" in questions[0], questions
    assert stack.job(headers, job_id)["status"] == "canceled"

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("job-delete").click()
    page.wait_for_url(re.compile(r".*#/$"))
    expect(page.get_by_test_id("notice")).to_contain_text("deleted")
    expect(page.locator(f"[data-testid=jobs-table] tr[data-job-id='{job_id}']")).to_have_count(0)
    with stack.client(headers) as client:
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404


def _ensure_bucket(stack: Stack, bucket: str) -> None:
    s3 = stack.s3()
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=bucket)


def test_batch_whose_items_all_failed_is_not_shown_as_completed(
    stack: Stack, page: Page, phone: Page, shots: Path
) -> None:
    _ensure_bucket(stack, SOURCE_BUCKET)
    run = uuid.uuid4().hex[:8]
    headers = stack.new_key()
    items = [
        {"source": f"s3://{SOURCE_BUCKET}/{run}/missing-{i}.mp4", "external_id": f"gone-{i}"}
        for i in range(2)
    ]
    with stack.client(headers) as client:
        response = client.post("/v1/batches", json={"name": "all gone", "items": items})
        assert response.status_code == 202, response.text
        batch_id = response.json()["id"]

        def ended() -> dict[str, Any] | None:
            batch = client.get(f"/v1/batches/{batch_id}").json()
            return batch if batch["status"] == "completed" else None

        batch = wait_for(ended, timeout_s=120, what="the batch to end")
    assert batch["counts"]["failed"] == 2 and batch["counts"]["succeeded"] == 0, batch

    enter_key(page, stack, headers)
    page.goto(f"{stack.base_url}/#/batches")
    row = page.locator(f"[data-testid=batches-table] tr[data-batch-id='{batch_id}']")
    expect(row).to_contain_text("all gone")
    expect(row.locator(".badge")).to_have_text("all failed")
    expect(row.locator("td.batch-failed")).to_have_text("2")

    page.goto(f"{stack.base_url}/#/batches/{batch_id}")
    status = page.get_by_test_id("batch-status")
    expect(status).to_have_text("all failed")
    expect(status).to_have_attribute("data-status", "completed")
    assert not _is_green(_rgb(page, "#batch-status", "color"))
    assert not _is_green(_rgb(page, "#batch-status", "backgroundColor"))
    expect(page.locator("#count-failed")).to_have_text("2")
    rows = page.locator("[data-testid=batch-items] tbody tr")
    expect(rows).to_have_count(2)
    for index in range(2):
        expect(rows.nth(index).locator("td.error-cell")).to_contain_text("source_not_found")
    page.screenshot(path=str(shots / "batch-failed-desktop.png"), full_page=True)

    # The exports, from the buttons, carry each item's error.
    with page.expect_download() as csv_download:
        page.get_by_test_id("batch-csv").click()
    assert csv_download.value.suggested_filename == f"batch-{batch_id}.csv"
    exported = list(csv.DictReader(io.StringIO(Path(csv_download.value.path()).read_text())))
    assert [r["external_id"] for r in exported] == ["gone-0", "gone-1"]
    assert {r["error_code"] for r in exported} == {"source_not_found"}
    with page.expect_download() as jsonl_download:
        page.get_by_test_id("batch-jsonl").click()
    assert jsonl_download.value.suggested_filename == f"batch-{batch_id}.jsonl"
    lines = [json.loads(line) for line in Path(jsonl_download.value.path()).read_text().splitlines() if line]
    assert [line["status"] for line in lines] == ["failed", "failed"]

    enter_key(phone, stack, headers)
    phone.goto(f"{stack.base_url}/#/batches/{batch_id}")
    expect(phone.get_by_test_id("batch-status")).to_have_text("all failed")
    expect(phone.locator("[data-testid=batch-items] tbody tr")).to_have_count(2)
    _no_horizontal_scroll(phone)
    phone.screenshot(path=str(shots / "batch-failed-phone.png"), full_page=True)


def test_cancel_a_running_batch_from_its_page(stack: Stack, page: Page) -> None:
    _ensure_bucket(stack, SOURCE_BUCKET)
    run = uuid.uuid4().hex[:8]
    headers = stack.new_key()
    items = [{"source": f"s3://{SOURCE_BUCKET}/{run}/held-{i}.mp4"} for i in range(2)]
    stack.pause_queue("probe")
    try:
        with stack.client(headers) as client:
            response = client.post("/v1/batches", json={"name": "held back", "items": items})
            assert response.status_code == 202, response.text
            batch_id = response.json()["id"]
        enter_key(page, stack, headers)
        page.goto(f"{stack.base_url}/#/batches/{batch_id}")
        expect(page.get_by_test_id("batch-status")).to_have_text("running")
        button = page.get_by_test_id("batch-cancel")
        expect(button).to_be_visible()
        page.once("dialog", lambda dialog: dialog.accept())
        button.click()
        expect(page.get_by_test_id("batch-status")).to_have_text("canceled")
        expect(page.locator("#count-canceled")).to_have_text("2")
        expect(page.get_by_test_id("notice")).to_contain_text("canceled")
        expect(button).to_be_hidden()
    finally:
        stack.resume_queue("probe")
    with stack.client(headers) as client:
        assert client.get(f"/v1/batches/{batch_id}").json()["status"] == "canceled"


def test_usable_at_phone_width(
    stack: Stack, phone: Page, finished: tuple[dict[str, str], dict[str, Any]], shots: Path
) -> None:
    headers, job = finished

    def longest_verdict(route: Route) -> None:
        # The longest words a list shows, whatever the random model decided for this job.
        response = route.fetch()
        body = response.json()
        for item in body["items"]:
            item.update(verdict="real", verdict_label="No signs of manipulation found by this model")
        route.fulfill(response=response, json=body)

    phone.route(re.compile(r".*/v1/jobs\?limit=25$"), longest_verdict)
    enter_key(phone, stack, headers)
    expect(phone.get_by_test_id("upload-status")).to_be_hidden()
    row = phone.locator(f"[data-testid=jobs-table] tr[data-job-id='{job['id']}']")
    expect(row).to_be_visible()
    expect(row.locator("td.result")).to_have_text("No signs of manipulation found by this model")
    _no_horizontal_scroll(phone)
    phone.screenshot(path=str(shots / "jobs-phone.png"), full_page=True)

    phone.goto(f"{stack.base_url}/#/jobs/{job['id']}")
    phone.wait_for_function(
        "id => document.body.dataset.jobLoaded === id", arg=job["id"], timeout=JOB_TIMEOUT_MS
    )
    expect(phone.get_by_test_id("verdict")).to_be_visible()
    expect(phone.get_by_test_id("score-scale")).to_be_visible()
    _no_horizontal_scroll(phone)
    # The chart's labels stay readable: drawn at the phone's width, not shrunk from a desktop one.
    heights = phone.eval_on_selector_all(
        "[data-testid=score-chart] text.tick", "nodes => nodes.map(n => n.getBoundingClientRect().height)"
    )
    assert heights and min(heights) >= 10, heights
    chart = phone.locator("[data-testid=score-chart] svg").bounding_box()
    assert chart is not None and chart["width"] <= 390
    phone.screenshot(path=str(shots / "job-phone.png"), full_page=True)

    phone.goto(f"{stack.base_url}/#/batches")
    expect(phone.locator("#view-batches")).to_be_visible()
    _no_horizontal_scroll(phone)


def test_favicon_is_served_and_nothing_is_missing(stack: Stack, page: Page) -> None:
    missing: list[str] = []
    page.on("response", lambda response: missing.append(response.url) if response.status >= 400 else None)
    page.goto(stack.base_url + "/")
    expect(page.locator("#view-nokey")).to_be_visible()
    href = page.eval_on_selector("link[rel=icon]", "node => node.href")
    for url in (href, stack.base_url + "/favicon.ico"):
        answer = httpx.get(url, timeout=10)
        assert answer.status_code == 200, url
        assert answer.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in answer.content
    page.wait_for_load_state("networkidle")
    assert missing == []
