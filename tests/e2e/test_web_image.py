"""An image job on the page, in a real browser against the real stack: the picture itself, its
face boxed in the colour of its score over the face MTCNN found, the heatmaps, and no chart over
time; the file picker offers photos as well as videos. Screenshots go to $E2E_SCREENSHOTS when it
is set."""

from __future__ import annotations

import colorsys
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from core.media import IMAGE_CONTENT_TYPES
from tests.e2e.conftest import enter_key
from tests.utils.images import astronaut, encode, rotated_jpeg
from tests.utils.stack import Stack

pytestmark = pytest.mark.e2e

JOB_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def image_job(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], dict[str, Any]]:
    """A succeeded image job: the astronaut stored on its side with an EXIF orientation."""
    headers = stack.new_key()
    path = tmp_path_factory.mktemp("e2e-image") / f"portrait-{uuid.uuid4().hex[:6]}.jpg"
    path.write_bytes(rotated_jpeg(astronaut()))
    assert Image.open(path).size == (512, 384)
    job = stack.wait_job(headers, stack.submit(headers, path)["id"])
    assert job["status"] == "succeeded" and job["media_type"] == "image", job
    assert len(job["faces"]) == 1, job
    return headers, job


def _score_colour(score: float) -> tuple[int, int, int]:
    hue = round(120 * (1 - score))
    red, green, blue = colorsys.hls_to_rgb(hue / 360, 0.42, 0.80)
    return round(red * 255), round(green * 255), round(blue * 255)


def test_score_colours_run_from_green_to_red() -> None:
    assert _score_colour(0.0)[1] > 150 > _score_colour(0.0)[0]
    assert _score_colour(1.0)[0] > 150 > _score_colour(1.0)[1]


def _colour(text: str) -> tuple[int, int, int]:
    red, green, blue = (int(part) for part in re.findall(r"\d+", text)[:3])
    return red, green, blue


def test_image_result_shows_the_picture_with_coloured_boxes_and_heatmaps(
    stack: Stack, page: Page, image_job: tuple[dict[str, str], dict[str, Any]], shots: Path
) -> None:
    headers, job = image_job
    enter_key(page, stack, headers)
    page.goto(f"{stack.base_url}/#/jobs/{job['id']}")
    page.wait_for_function(
        "id => document.body.dataset.jobLoaded === id", arg=job["id"], timeout=JOB_TIMEOUT_MS
    )

    panel = page.get_by_test_id("image-result")
    expect(panel).to_be_visible()
    picture = panel.locator("img")
    expect(picture).to_be_visible()
    # The picture loaded, upright (the browser applies the EXIF orientation, as the worker did).
    natural = picture.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert natural == [True, 384, 512], natural
    assert page.locator("#job-video").inner_text().startswith("image, 384×512")

    boxes = panel.locator("rect.image-face")
    expect(boxes).to_have_count(1)
    (face,) = job["faces"]
    assert float(boxes.first.get_attribute("data-score") or "nan") == pytest.approx(face["score"], abs=1e-6)
    # Coloured by its score: hue 120 (green) at 0 down to 0 (red) at 1.
    drawn_colour = _colour(boxes.first.evaluate("node => getComputedStyle(node).stroke"))
    assert drawn_colour == pytest.approx(_score_colour(face["score"]), abs=2), (face["score"], drawn_colour)
    # The box lies over the face as the picture is shown: its screen rectangle is the face's box
    # scaled to the displayed picture.
    shown = picture.bounding_box()
    drawn = boxes.first.bounding_box()
    assert shown is not None and drawn is not None
    scale = shown["width"] / 384
    x1, y1, x2, y2 = face["box"]
    assert drawn["x"] - shown["x"] == pytest.approx(x1 * scale, abs=4)
    assert drawn["y"] - shown["y"] == pytest.approx(y1 * scale, abs=4)
    assert drawn["width"] == pytest.approx((x2 - x1) * scale, abs=6)
    # The face is in the upper half of the portrait: the picture was not analysed on its side.
    assert y2 < 320

    expect(panel.locator(".image-faces li")).to_have_count(1)
    expect(panel.locator(".image-faces li").first).to_contain_text(f"P(fake) {face['score']:.3f}")
    # The heatmaps of the faces, as for a video; no score-over-time chart for a single frame.
    heatmaps = page.locator("#faces img.heatmap")
    expect(heatmaps.first).to_be_visible()
    assert heatmaps.first.evaluate("img => img.complete && img.naturalWidth > 0")
    expect(page.locator("#chart-panel")).to_be_hidden()
    expect(page.locator("#segments-panel")).to_be_hidden()
    expect(page.locator("#job-input-label")).to_have_text("image")
    page.screenshot(path=str(shots / "image-job.png"), full_page=True)

    # Back to a video job on the same page: the image panel goes away.
    video = stack.face_video(f"after-image-{uuid.uuid4().hex[:6]}.mp4", seconds=1.0)
    video_job = stack.wait_job(headers, stack.submit(headers, video.path)["id"])
    assert video_job["media_type"] == "video" and video_job["faces"] is None
    page.goto(f"{stack.base_url}/#/jobs/{video_job['id']}")
    page.wait_for_function(
        "id => document.body.dataset.jobLoaded === id", arg=video_job["id"], timeout=JOB_TIMEOUT_MS
    )
    expect(page.get_by_test_id("image-result")).to_have_count(0)
    expect(page.locator("#chart-panel")).to_be_visible()
    expect(page.locator("#segments-panel")).to_be_visible()
    expect(page.locator("#job-input-label")).to_have_text("video")


def test_the_file_picker_offers_photos_and_sends_one(
    stack: Stack, page: Page, tmp_path: Path, shots: Path
) -> None:
    headers = stack.new_key()
    enter_key(page, stack, headers)
    # The browser's file chooser lists only what ``accept`` names: every image type the API takes.
    accept = (page.get_attribute("#upload-file", "accept") or "").split(",")
    assert "video/*" in accept, accept
    for content_type in IMAGE_CONTENT_TYPES.values():
        assert content_type in accept, (content_type, accept)
    for extension in (".jpg", ".jpeg", ".png", ".webp", ".gif"):
        assert extension in accept, (extension, accept)
    expect(page.locator("#view-home h2").first).to_have_text("Analyse a video or photo")
    formats = page.get_by_test_id("upload-formats")
    expect(formats).to_be_visible()
    for name in ("JPEG", "PNG", "WebP", "GIF", "MP4"):
        expect(formats).to_contain_text(name)
    page.screenshot(path=str(shots / "upload-photo-picker.png"))

    photo = tmp_path / f"photo-{uuid.uuid4().hex[:6]}.png"
    photo.write_bytes(encode(Image.fromarray(astronaut()), "PNG"))
    page.set_input_files("#upload-file", str(photo))
    page.click("#upload-button")
    page.wait_for_url(re.compile(r".*#/jobs/[0-9a-f-]{36}$"), timeout=30_000)
    job_id = page.url.rsplit("/", 1)[1]
    page.wait_for_function("id => document.body.dataset.jobLoaded === id", arg=job_id, timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-input-label")).to_have_text("image")
    assert stack.job(headers, job_id)["media_type"] == "image"
