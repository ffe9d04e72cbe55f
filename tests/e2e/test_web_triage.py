"""Triage on the page, in a real browser against the real stack: the jobs list filtered by result,
status, media, dates, external id and batch through GET /v1/jobs's filters, with older pages behind
a button; the filters kept in the address (a reload or a shared link shows the same list); the
external id in the list and on the job's page.

Screenshots go to $E2E_SCREENSHOTS when it is set, to be looked at."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.e2e.conftest import SOURCE_BUCKET, enter_key
from tests.utils.images import astronaut, encode
from tests.utils.stack import Stack
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.e2e

BATCH_SIZE = 27  # more than one page of the list (25)
# The filters' checkboxes, and the summary above the list, say a verdict in these words.
CHOICE_WORDS = {
    "fake": "signs of manipulation",
    "real": "no signs found",
    "inconclusive": "inconclusive",
    "no_face": "no face",
}


@pytest.fixture(scope="module")
def backlog(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tenant's jobs: a batch of 27 items whose sources are missing (failed), then a video and
    a photo that succeeded, each with an external id."""
    from PIL import Image

    headers = stack.new_key()
    s3 = stack.s3()
    if SOURCE_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=SOURCE_BUCKET)
    video = stack.face_video(f"triage-{uuid.uuid4().hex[:6]}.mp4", seconds=2.0)
    photo = tmp_path_factory.mktemp("triage") / "portrait.png"
    photo.write_bytes(encode(Image.fromarray(astronaut()), "PNG"))
    run = uuid.uuid4().hex[:8]
    items = [
        {"source": f"s3://{SOURCE_BUCKET}/{run}/gone-{i:02d}.mp4", "external_id": f"gone-{i:02d}"}
        for i in range(BATCH_SIZE)
    ]
    with stack.client(headers) as client:
        response = client.post("/v1/batches", json={"name": "missing sources", "items": items})
        assert response.status_code == 202, response.text
        batch_id = response.json()["id"]

        def ended() -> dict[str, Any] | None:
            batch = client.get(f"/v1/batches/{batch_id}").json()
            return batch if batch["status"] != "running" else None

        wait_for(ended, timeout_s=180, what="the batch to end")
    # Submitted after the batch, so that both are on the list's first page.
    video_job = stack.submit(headers, video.path, external_id="case-7/clip-A.mp4")
    photo_job = stack.submit(headers, photo, external_id="photo-1")
    video_job = stack.wait_job(headers, video_job["id"])
    photo_job = stack.wait_job(headers, photo_job["id"])
    assert video_job["status"] == "succeeded" and photo_job["status"] == "succeeded"
    return {"headers": headers, "video": video_job, "photo": photo_job, "batch_id": batch_id}


def _apply(page: Page) -> None:
    """Applies the filters as set on the form; returns once the list for them is on screen."""
    page.click("#filters-apply")
    _listed(page)


def _listed(page: Page) -> None:
    page.wait_for_function("() => document.body.dataset.jobsLoaded === location.hash")


def _rows(page: Page) -> Any:
    return page.locator("[data-testid=jobs-table] tbody tr")


def _shown_ids(page: Page) -> list[str]:
    return list(page.eval_on_selector_all("#jobs-body tr", "rows => rows.map(r => r.dataset.jobId)"))


def _local_date(page: Page, days: int = 0) -> str:
    """The browser's own calendar day, ``days`` from today, as a date input takes it."""
    script = """days => {
        const d = new Date();
        d.setDate(d.getDate() + days);
        const two = (n) => String(n).padStart(2, "0");
        return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
    }"""
    return str(page.evaluate(script, days))


def test_filter_the_jobs_list_and_keep_the_filters_in_the_address(
    stack: Stack, page: Page, phone: Page, backlog: dict[str, Any], shots: Path
) -> None:
    video, photo = backlog["video"], backlog["photo"]
    enter_key(page, stack, backlog["headers"])
    rows = _rows(page)
    expect(rows).to_have_count(25)
    expect(page.locator("#jobs-more")).to_be_visible()
    video_row = page.locator(f"#jobs-body tr[data-job-id='{video['id']}']")
    expect(video_row.locator("td.external-id")).to_have_text("case-7/clip-A.mp4")

    # Photos only: the address says so, and a reload shows the same list.
    page.check("#filters input[name=media_type][value=image]")
    _apply(page)
    page.wait_for_url(re.compile(r".*#/\?media_type=image$"))
    expect(rows).to_have_count(1)
    assert _shown_ids(page) == [photo["id"]]
    expect(page.get_by_test_id("filters-summary")).to_have_text("Filtered by media photos")
    page.reload()
    _listed(page)
    expect(page.locator("#filters input[name=media_type][value=image]")).to_be_checked()
    expect(rows).to_have_count(1)
    assert _shown_ids(page) == [photo["id"]]

    # The video's result and videos only; then several statuses, comma-separated in the address.
    page.uncheck("#filters input[name=media_type][value=image]")
    page.check(f"#filters input[name=verdict][value={video['verdict']}]")
    page.check("#filters input[name=media_type][value=video]")
    _apply(page)
    expect(rows).to_have_count(1)
    assert _shown_ids(page) == [video["id"]]
    expect(page.get_by_test_id("filters-summary")).to_contain_text(f"result {CHOICE_WORDS[video['verdict']]}")
    page.goto(f"{stack.base_url}/#/?status=succeeded,queued")
    _listed(page)
    expect(page.locator("#filters input[name=status][value=succeeded]")).to_be_checked()
    expect(page.locator("#filters input[name=status][value=queued]")).to_be_checked()
    expect(page.locator("#filters input[name=verdict]:checked")).to_have_count(0)
    expect(rows).to_have_count(2)
    assert set(_shown_ids(page)) == {video["id"], photo["id"]}

    # An external id, exactly.
    page.get_by_test_id("filters-clear").click()
    _listed(page)
    expect(rows).to_have_count(25)
    page.fill("#filter-external-id", "photo-1")
    _apply(page)
    expect(rows).to_have_count(1)
    assert _shown_ids(page) == [photo["id"]]
    page.fill("#filter-external-id", "")

    # Dates are the browser's calendar days: nothing was submitted up to yesterday, all of it today.
    page.fill("#filter-to", _local_date(page, -1))
    _apply(page)
    expect(page.get_by_test_id("jobs-empty")).to_have_text("No jobs match these filters.")
    expect(rows).to_have_count(0)
    page.fill("#filter-from", _local_date(page))
    page.fill("#filter-to", _local_date(page))
    _apply(page)
    expect(rows).to_have_count(25)
    expect(page.get_by_test_id("jobs-empty")).to_be_hidden()
    # A range that ends before it starts: the API's reason, not an empty list.
    page.fill("#filter-from", _local_date(page, 1))
    page.click("#filters-apply")
    expect(page.get_by_test_id("error")).to_contain_text(
        "created_to: comes before created_from (invalid_filter)"
    )
    expect(rows).to_have_count(0)
    expect(page.get_by_test_id("jobs-empty")).to_have_text("No list for these filters: see the error above.")
    page.screenshot(path=str(shots / "triage-invalid-dates.png"), full_page=True)

    # The phone layout: the filters stack, the external id is a labelled line of each card.
    enter_key(phone, stack, backlog["headers"])
    phone.goto(f"{stack.base_url}/#/?media_type=video,image&status=succeeded")
    expect(_rows(phone)).to_have_count(2)
    card = phone.locator(f"#jobs-body tr[data-job-id='{video['id']}'] td.external-id")
    expect(card).to_have_attribute("data-label", "external id")
    widths = phone.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
    phone.screenshot(path=str(shots / "triage-phone.png"), full_page=True)
    page.goto(f"{stack.base_url}/#/?status=succeeded")
    expect(rows).to_have_count(2)
    page.screenshot(path=str(shots / "triage-desktop.png"), full_page=True)


def test_a_batchs_jobs_page_by_page_and_the_external_id_on_a_job(
    stack: Stack, page: Page, backlog: dict[str, Any], shots: Path
) -> None:
    batch_id = backlog["batch_id"]
    enter_key(page, stack, backlog["headers"])
    expect(page.locator("#jobs-more")).to_be_visible()
    page.goto(f"{stack.base_url}/#/batches/{batch_id}")
    expect(page.get_by_test_id("batch-status")).to_have_text("all failed")
    # The batch's list held back at first: the earlier list's rows and its "Older jobs" must not
    # stand in for it meanwhile.
    held: list[Route] = []
    batch_list = re.compile(r".*/v1/jobs\?.*batch_id=.*")
    page.route(batch_list, lambda route: held.append(route))
    page.get_by_test_id("batch-jobs-link").click()
    page.wait_for_url(re.compile(rf".*#/\?batch_id={batch_id}$"))
    while not held:
        page.wait_for_timeout(50)
    expect(_rows(page)).to_have_count(0)
    expect(page.locator("#jobs-more")).to_be_hidden()
    for route in held:
        route.continue_()
    page.unroute(batch_list)
    _listed(page)
    expect(page.locator("#filter-batch-id")).to_have_value(batch_id)
    rows = _rows(page)
    expect(rows).to_have_count(25)
    more = page.locator("#jobs-more")
    expect(more).to_be_visible()
    more.click()
    expect(rows).to_have_count(BATCH_SIZE)
    expect(more).to_be_hidden()
    shown = page.eval_on_selector_all("#jobs-body td.external-id", "cells => cells.map(c => c.textContent)")
    assert sorted(shown) == [f"gone-{i:02d}" for i in range(BATCH_SIZE)]
    assert set(page.eval_on_selector_all("#jobs-body tr", "rows => rows.map(r => r.dataset.status)")) == {
        "failed"
    }
    # The older page stays while the list refreshes.
    page.wait_for_timeout(2500)
    expect(rows).to_have_count(BATCH_SIZE)

    # A job of the batch names its external id and links back to its batch.
    rows.first.locator("a").click()
    page.wait_for_function("() => document.body.dataset.jobLoaded", timeout=30_000)
    expect(page.get_by_test_id("job-external-id")).to_have_text(re.compile(r"^gone-\d\d$"))
    batch_link = page.get_by_test_id("job-batch")
    expect(batch_link).to_have_attribute("href", f"#/batches/{batch_id}")

    # A job on its own has no batch line.
    page.goto(f"{stack.base_url}/#/jobs/{backlog['video']['id']}")
    page.wait_for_function("id => document.body.dataset.jobLoaded === id", arg=backlog["video"]["id"])
    expect(page.get_by_test_id("job-external-id")).to_have_text("case-7/clip-A.mp4")
    expect(page.locator("#job-batch-row")).to_be_hidden()
    page.screenshot(path=str(shots / "job-external-id.png"), full_page=True)
