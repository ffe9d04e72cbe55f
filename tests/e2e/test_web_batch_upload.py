"""A batch started from the page, in a real browser against the real stack, once per storage kind:
a folder of videos and photos picked (other files skipped and counted), each file sent through
POST /v1/uploads (to a presigned S3 URL without the key, or to the API's own upload route with
it), a file the service refuses shown with its error, then the batch's progress and its exports.
Dropped files are sorted the same way.

Screenshots go to $E2E_SCREENSHOTS when it is set, to be looked at."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import cast

import pytest
from PIL import Image
from playwright.sync_api import FilePayload, Page, Request, expect

from tests.e2e.conftest import enter_key
from tests.utils.images import astronaut, encode
from tests.utils.media import make_face_video
from tests.utils.stack import Stack

pytestmark = pytest.mark.e2e

BATCH_TIMEOUT_MS = 240_000


@pytest.fixture(params=["s3", "local"])
def storage_stack(request: pytest.FixtureRequest) -> Stack:
    """The stack once with S3 storage (presigned upload URLs) and once with a local directory, the
    default of ``./scripts/platform`` (uploads through the API)."""
    return cast(Stack, request.getfixturevalue("stack" if request.param == "s3" else "local_stack"))


def _newsroom(root: Path) -> Path:
    folder = root / "newsroom"
    (folder / "day-2").mkdir(parents=True)
    make_face_video(folder / "a.mp4", seconds=2.0, width=320, height=240, fps=10.0)
    (folder / "day-2" / "still.png").write_bytes(encode(Image.fromarray(astronaut()), "PNG"))
    (folder / "notes.txt").write_text("neither a video nor a photo\n")
    (folder / "broken.mp4").write_text("a text file with a video's name\n" * 20)
    return folder


def test_start_a_batch_from_a_folder_and_follow_it(
    storage_stack: Stack, page: Page, phone: Page, tmp_path: Path, shots: Path
) -> None:
    stack = storage_stack
    kind = "local" if stack.settings.storage_url.startswith("file:") else "s3"
    folder = _newsroom(tmp_path)
    headers = stack.new_key()
    key = headers["Authorization"].split(" ", 1)[1]
    sent: list[Request] = []
    page.on("request", lambda request: sent.append(request))
    enter_key(page, stack, headers)
    page.goto(f"{stack.base_url}/#/batches")

    page.set_input_files("#batch-folder", str(folder))
    picked = page.get_by_test_id("batch-picked")
    expect(picked).to_contain_text("3 files to send (2 videos, 1 photo")
    expect(picked).to_contain_text("1 other file skipped (neither a video nor a photo)")
    files = page.locator("[data-testid=batch-files] tbody tr")
    expect(files).to_have_count(3)
    paths = page.eval_on_selector_all("#batch-files-body tr", "rows => rows.map(r => r.dataset.path)")
    assert sorted(paths) == ["newsroom/a.mp4", "newsroom/broken.mp4", "newsroom/day-2/still.png"]
    page.fill("#batch-name", f"newsroom from the page ({kind})")
    page.screenshot(path=str(shots / f"batch-picked-{kind}.png"), full_page=True)

    page.get_by_test_id("batch-start").click()
    page.wait_for_url(re.compile(r".*#/batches/[0-9a-f-]{36}$"), timeout=60_000)
    batch_id = page.url.rsplit("/", 1)[1]
    notice = page.get_by_test_id("notice")
    expect(notice).to_contain_text("Batch started with 2 items.")
    expect(notice).to_contain_text("1 file could not be uploaded and is not in it.")
    expect(notice).to_contain_text("1 other file skipped (neither a video nor a photo).")
    # The file the service refused, with its error, on the batch's page.
    not_sent = page.get_by_test_id("batch-not-sent")
    expect(not_sent.locator("li")).to_have_count(1)
    expect(not_sent.locator("li")).to_contain_text("newsroom/broken.mp4: unsupported_format")

    # The progress, by state, until the batch ends.
    page.wait_for_function(
        "id => document.body.dataset.batchLoaded === `${id}:completed`",
        arg=batch_id,
        timeout=BATCH_TIMEOUT_MS,
    )
    expect(page.locator("#batch-title")).to_have_text(f"newsroom from the page ({kind})")
    expect(page.locator("#count-succeeded")).to_have_text("2")
    expect(page.locator("#count-failed")).to_have_text("0")
    items = page.locator("[data-testid=batch-items] tbody tr")
    expect(items).to_have_count(2)
    page.screenshot(path=str(shots / f"batch-started-{kind}.png"), full_page=True)

    with page.expect_download() as csv_download:
        page.get_by_test_id("batch-csv").click()
    rows = list(csv.DictReader(io.StringIO(Path(csv_download.value.path()).read_text())))
    assert sorted(
        (row["external_id"], row["filename"], row["media_type"], row["status"]) for row in rows
    ) == [
        ("newsroom/a.mp4", "a.mp4", "video", "succeeded"),
        ("newsroom/day-2/still.png", "still.png", "image", "succeeded"),
    ]

    # The key went to the API only: with S3 the bytes went to presigned URLs without it.
    puts = [request for request in sent if request.method == "PUT"]
    assert len(puts) == 3 if kind == "s3" else len(puts) >= 2, [p.url for p in puts]
    for request in sent:
        authorization = request.all_headers().get("authorization")
        if request.url.startswith(stack.base_url):
            continue
        assert authorization is None, f"the key went to {request.url}"
        assert key not in request.url
    if kind == "s3":
        assert all(not request.url.startswith(stack.base_url) for request in puts)
    else:
        assert all(request.url.startswith(f"{stack.base_url}/v1/uploads/") for request in puts)
        assert all(request.all_headers().get("authorization") == f"Bearer {key}" for request in puts)

    # The phone layout of the batch's page.
    enter_key(phone, stack, headers)
    phone.goto(f"{stack.base_url}/#/batches/{batch_id}")
    phone.wait_for_function("id => document.body.dataset.batchLoaded === `${id}:completed`", arg=batch_id)
    widths = phone.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
    phone.screenshot(path=str(shots / f"batch-started-phone-{kind}.png"), full_page=True)


def test_dropped_files_are_sorted_and_a_refused_key_sends_nothing_more(
    stack: Stack, page: Page, phone: Page, shots: Path
) -> None:
    headers = stack.new_key()
    enter_key(phone, stack, headers)
    phone.goto(f"{stack.base_url}/#/batches")
    dropped = phone.evaluate_handle(
        """() => {
        const transfer = new DataTransfer();
        transfer.items.add(new File(["not a picture"], "minutes.txt", { type: "text/plain" }));
        const header = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);
        transfer.items.add(new File([header], "face.png", { type: "image/png" }));
        transfer.items.add(new File([new Uint8Array(64)], "clip.mkv", { type: "" }));
        return transfer;
    }"""
    )
    phone.dispatch_event("#batch-drop", "drop", {"dataTransfer": dropped})
    picked = phone.get_by_test_id("batch-picked")
    expect(picked).to_contain_text("2 files to send (1 video, 1 photo")
    expect(picked).to_contain_text("1 other file skipped")
    expect(phone.locator("[data-testid=batch-files] tbody tr")).to_have_count(2)
    widths = phone.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
    phone.screenshot(path=str(shots / "batch-dropped-phone.png"), full_page=True)

    # Each file is checked by the service: the four bytes of a PNG header are refused, with why.
    phone.get_by_test_id("batch-start").click()
    notice = phone.get_by_test_id("notice")
    expect(notice).to_contain_text("No batch was created", timeout=30_000)
    failed = phone.locator("#batch-files-body tr[data-status=failed]")
    expect(failed).to_have_count(2)
    expect(failed.first.locator("td.error-cell")).not_to_be_empty()
    phone.screenshot(path=str(shots / "batch-refused-phone.png"), full_page=True)

    # A key the API refuses (one kept in the tab from before it was revoked, say) stops the
    # uploads at once: one refusal said, the rest not sent, no batch.
    wrong_key = f"dfs_{'0' * 8}_{'x' * 43}"
    enter_key(page, stack, stack.new_key())
    page.evaluate("key => sessionStorage.setItem('deepfakestream.apiKey', key)", wrong_key)
    page.reload()
    page.goto(f"{stack.base_url}/#/batches")
    clips: list[FilePayload] = [
        {"name": f"clip-{i}.mp4", "mimeType": "video/mp4", "buffer": b"\x00" * 256} for i in range(6)
    ]
    page.set_input_files("#batch-files", files=clips)
    expect(page.locator("[data-testid=batch-files] tbody tr")).to_have_count(6)
    page.get_by_test_id("batch-start").click()
    notice = page.get_by_test_id("notice")
    expect(notice).to_contain_text("The API refused the key", timeout=30_000)
    expect(notice).to_contain_text("invalid_api_key")
    codes = page.eval_on_selector_all(
        "#batch-files-body td.error-cell .error-code", "cells => cells.map(c => c.textContent)"
    )
    assert len(codes) == 6 and 1 <= codes.count("invalid_api_key") <= 3 and "not_sent" in codes, codes


def test_each_file_shows_its_upload_progress(stack: Stack, page: Page, tmp_path: Path, shots: Path) -> None:
    import numpy as np

    noise = np.random.default_rng(7).integers(0, 256, size=(1024, 1024, 3), dtype=np.uint8)
    photos = []
    for index in range(2):
        path = tmp_path / f"noise-{index}.png"
        path.write_bytes(encode(Image.fromarray(noise), "PNG"))
        photos.append(path)
    assert photos[0].stat().st_size > 2_000_000
    headers = stack.new_key()
    enter_key(page, stack, headers)
    page.goto(f"{stack.base_url}/#/batches")
    page.set_input_files("#batch-files", [str(path) for path in photos])
    # A slow uplink, so that the bytes take a few seconds to go.
    cdp = page.context.new_cdp_session(page)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 1_000_000},
    )
    page.get_by_test_id("batch-start").click()
    expect(page.get_by_test_id("batch-picked")).to_contain_text(re.compile(r"; [01] of 2 uploaded"))
    # Part way: a share of the file's bytes, not just "0%" then done.
    part_way = page.locator(
        "#batch-files-body tr[data-status=sending] td", has_text=re.compile(r"^[1-9]\d?%$")
    )
    expect(part_way.first).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("batch-start")).to_be_disabled()
    page.screenshot(path=str(shots / "batch-uploading.png"), full_page=True)
    page.wait_for_url(re.compile(r".*#/batches/[0-9a-f-]{36}$"), timeout=60_000)
    expect(page.get_by_test_id("notice-text")).to_have_text("Batch started with 2 items.")
    expect(page.get_by_test_id("notice")).to_have_attribute("data-kind", "good")
