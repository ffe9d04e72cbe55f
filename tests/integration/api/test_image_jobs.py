"""Image jobs on the real platform (API, worker, PostgreSQL, Redis, S3): multipart and inline base64,
the answer's ``media_type`` and ``faces``, the stored picture, heatmaps, each refusal typed (at
the API or as a failed job), and a batch mixing images and videos whose exports tell them apart."""

from __future__ import annotations

import base64
import csv
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.utils.images import astronaut, bomb_png, encode, flat_grey_png, rotated_jpeg
from tests.utils.media import make_face_video
from tests.utils.stack import QUICK_SETTINGS, Stack, running_stack
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.integration

SOURCE_BUCKET = "image-sources"
INLINE_CAP = 256 * 1024
PIXEL_CAP = 1_000_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("image-stack"),
        settings={
            **QUICK_SETTINGS,
            "SOURCE_BUCKETS": SOURCE_BUCKET,
            "MAX_IMAGE_BASE64_BYTES": str(INLINE_CAP),
            "MAX_IMAGE_PIXELS": str(PIXEL_CAP),
        },
        bucket="dfs-images",
        source_bucket=SOURCE_BUCKET,
        worker_name="images",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def headers(stack: Stack) -> dict[str, str]:
    return stack.new_key()


def _post_file(
    client: httpx.Client, name: str, data: bytes, content_type: str = "image/jpeg"
) -> httpx.Response:
    return client.post("/v1/jobs", files={"file": (name, data, content_type)})


def _post_inline(client: httpx.Client, text: str) -> httpx.Response:
    return client.post("/v1/jobs", json={"image_base64": text, "external_id": "inline"})


def _upright(face: dict[str, Any]) -> None:
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 <= 384 and 0 <= y1 < y2 < 320, face
    assert set(face) == {"box", "det_score", "score"} and 0 <= face["score"] <= 1


def test_a_photo_upload_is_an_image_job(stack: Stack, headers: dict[str, str]) -> None:
    photo = rotated_jpeg(astronaut())
    with stack.client(headers) as client:
        created = _post_file(client, "portrait.jpg", photo)
        assert created.status_code == 202, created.text
        assert created.json()["media_type"] == "image" and created.json()["faces"] is None
        assert created.json()["video"]["container"] == "jpeg"
        job = stack.wait_job(headers, created.json()["id"])
        assert job["status"] == "succeeded", job
        assert job["media_type"] == "image" and job["verdict"] in ("fake", "real")
        (face,) = job["faces"]
        _upright(face)
        assert job["score"] == pytest.approx(face["score"], abs=1e-4)
        assert (job["video"]["width"], job["video"]["height"]) == (384, 512)
        assert job["progress"] == {"segments_done": 1, "segments_total": 1}

        frames = client.get(f"/v1/jobs/{job['id']}/frames").json()["items"]
        assert len(frames) == 1 and frames[0]["faces"][0]["box"] == face["box"]
        picture = client.get(f"/v1/jobs/{job['id']}/image")
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
        assert picture.content == photo
        explanations = client.get(f"/v1/jobs/{job['id']}/explanations").json()["items"]
        assert len(explanations) == 1 and explanations[0]["score"] == pytest.approx(face["score"], abs=1e-4)
        heatmap = client.get(explanations[0]["heatmap_url"])
        assert heatmap.status_code == 200 and heatmap.content.startswith(b"\xff\xd8\xff")
        # No frame rate or duration for a picture: nothing to skew the drift of video inputs.
        statistics = client.get(f"/v1/jobs/{job['id']}/statistics").json()["input"]
        assert (statistics["width"], statistics["height"]) == (384, 512)
        assert statistics["fps"] is None and statistics["duration_s"] is None
        assert statistics["frames_sampled"] == 1
        listed = client.get("/v1/jobs").json()["items"]
        assert {item["id"]: item["media_type"] for item in listed}[job["id"]] == "image"


def test_an_inline_base64_image_is_analysed(stack: Stack, headers: dict[str, str]) -> None:
    pixels = astronaut()
    rgba = np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])
    rgba[-60:, :, 3] = 0  # a transparent band at the bottom
    small = Image.fromarray(rgba, "RGBA").resize((288, 384))
    data = encode(small, "PNG")
    assert len(data) <= INLINE_CAP
    with stack.client(headers) as client:
        created = _post_inline(client, "data:image/png;base64," + base64.b64encode(data).decode())
        assert created.status_code == 202, created.text
        job = stack.wait_job(headers, created.json()["id"])
        # The same picture sent again with the same Idempotency-Key is the same job.
        key = {"Idempotency-Key": f"inline-{uuid.uuid4().hex}"}
        body = {"image_base64": base64.b64encode(data).decode()}
        first = client.post("/v1/jobs", json=body, headers=key)
        again = client.post("/v1/jobs", json=body, headers=key)
    assert job["status"] == "succeeded" and job["media_type"] == "image" and job["external_id"] == "inline"
    assert len(job["faces"]) == 1 and job["video"]["container"] == "png"
    assert first.status_code == again.status_code == 202
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json()["id"] == first.json()["id"]


def test_inline_refusals_are_typed(stack: Stack, headers: dict[str, str]) -> None:
    too_big = base64.b64encode(b"\xff\xd8\xff" + bytes(INLINE_CAP)).decode()
    mp4 = base64.b64encode(b"\x00\x00\x00\x18ftypmp42" + bytes(600)).decode()
    with stack.client(headers) as client:
        answers = {
            "bad": _post_inline(client, "this is not base64!"),
            "empty": _post_inline(client, ""),
            "too_big": _post_inline(client, too_big),
            "video": _post_inline(client, mp4),
            "two_sources": client.post("/v1/jobs", json={"image_base64": mp4, "source": "s3://x/y.mp4"}),
        }
    expected = {
        "bad": (422, "invalid_base64"),
        "empty": (422, "empty_file"),
        "too_big": (413, "image_too_large"),
        "video": (415, "unsupported_format"),
        "two_sources": (422, None),
    }
    for name, (status, code) in expected.items():
        answer = answers[name]
        assert answer.status_code == status, (name, answer.text)
        if code is not None:
            assert answer.json()["error"]["code"] == code, (name, answer.text)


def test_image_refusals_are_typed(stack: Stack, headers: dict[str, str], tmp_path: Path) -> None:
    pixels = astronaut()
    frames = [Image.fromarray(pixels), Image.fromarray(255 - pixels)]
    animated_webp, animated_gif = io.BytesIO(), io.BytesIO()
    frames[0].save(animated_webp, format="WEBP", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(animated_gif, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    large = encode(Image.new("RGB", (1250, 1000), "grey"), "PNG")  # 1.25 Mpixel, past the cap
    bomb = bomb_png(tmp_path / "bomb.png").read_bytes()
    line = flat_grey_png(tmp_path / "line.png", width=900_000, height=1).read_bytes()  # under the pixel cap
    truncated = encode(Image.fromarray(pixels), "JPEG")[:2500]
    with stack.client(headers) as client:
        webp = _post_file(client, "moving.webp", animated_webp.getvalue(), "image/webp")
        assert webp.status_code == 415 and webp.json()["error"]["code"] == "animated_image", webp.text
        jobs = {
            name: _post_file(client, f"{name}.bin", data).json()["id"]
            for name, data in (("gif", animated_gif.getvalue()), ("large", large), ("bomb", bomb),
                               ("line", line), ("truncated", truncated))
        }  # fmt: skip
    ended = {name: stack.wait_job(headers, job_id) for name, job_id in jobs.items()}
    codes = {name: (job["status"], job["error"]["code"], job["attempts"]) for name, job in ended.items()}
    assert codes == {
        "gif": ("failed", "animated_image", 1),
        "large": ("failed", "image_too_large", 1),
        "bomb": ("failed", "image_too_large", 1),
        "line": ("failed", "image_too_large", 1),
        "truncated": ("failed", "corrupt_image", 1),
    }
    assert "1250×1000" in ended["large"]["error"]["message"]
    assert "900000×1" in ended["line"]["error"]["message"]
    assert all(job["media_type"] == "image" for job in ended.values())
    assert stack.worker.alive()


def test_a_batch_mixes_images_and_videos_and_its_exports_say_which(
    stack: Stack, headers: dict[str, str], tmp_path: Path
) -> None:
    video = make_face_video(tmp_path / "clip.mp4", seconds=1.0, width=320, height=240, fps=10.0)
    run = uuid.uuid4().hex[:8]
    s3 = stack.s3()
    photo = encode(Image.fromarray(astronaut()), "WEBP")
    s3.put_object(Bucket=SOURCE_BUCKET, Key=f"{run}/photo.webp", Body=photo)
    s3.put_object(Bucket=SOURCE_BUCKET, Key=f"{run}/clip.mp4", Body=video.path.read_bytes())
    items = [{"source": f"s3://{SOURCE_BUCKET}/{run}/{name}"} for name in ("photo.webp", "clip.mp4")]
    with stack.client(headers) as client:
        created = client.post("/v1/batches", json={"items": items})
        assert created.status_code == 202, created.text
        batch_id = created.json()["id"]

        def ended() -> dict[str, Any] | None:
            batch = client.get(f"/v1/batches/{batch_id}").json()
            return batch if batch["status"] != "running" else None

        batch = wait_for(ended, timeout_s=300, what="the mixed batch to end", interval_s=0.5)
        rows = list(csv.DictReader(io.StringIO(
            client.get(f"/v1/batches/{batch_id}/results", params={"format": "csv"}).text
        )))  # fmt: skip
        jsonl = client.get(f"/v1/batches/{batch_id}/results", params={"format": "jsonl"}).text
        lines = [json.loads(line) for line in jsonl.splitlines()]
        image_job = client.get(f"/v1/jobs/{rows[0]['job_id']}").json()
        picture = client.get(f"/v1/jobs/{rows[0]['job_id']}/image")
        video_picture = client.get(f"/v1/jobs/{rows[1]['job_id']}/image")
    assert batch["counts"]["succeeded"] == 2, batch
    kinds = [(row["media_type"], row["status"]) for row in rows]
    assert kinds == [("image", "succeeded"), ("video", "succeeded")]
    assert [line["media_type"] for line in lines] == ["image", "video"]
    assert len(image_job["faces"]) == 1
    # A picture named by an s3:// source is read from its bucket.
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/webp"
    assert video_picture.status_code == 404 and video_picture.json()["error"]["code"] == "not_an_image"
