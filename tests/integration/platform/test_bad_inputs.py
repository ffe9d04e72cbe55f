"""Unusable uploads end as a typed 4xx or as a failed job with an error code; never a 5xx, and the
worker goes on with the next job."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.platform.conftest import MAX_UPLOAD_BYTES
from tests.utils.media import FaceVideo, make_bad_media
from tests.utils.stack import Stack

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("text", 415, "unsupported_format"),
        ("image_as_mp4", 415, "unsupported_format"),
        ("empty", 422, "empty_file"),
    ],
)
def test_refused_at_upload(platform: Stack, tmp_path: Path, kind: str, status: int, code: str) -> None:
    headers = platform.new_key()
    path = make_bad_media(kind, tmp_path / "bad.mp4")

    body = platform.submit(headers, path, expect=status)

    assert body["error"]["code"] == code
    assert platform.tenant_keys(platform.tenant_id(headers)) == set()


def test_too_large_upload_is_413_and_nothing_is_stored(platform: Stack, tmp_path: Path) -> None:
    headers = platform.new_key()
    path = tmp_path / "huge.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (MAX_UPLOAD_BYTES + 1))

    body = platform.submit(headers, path, expect=413)

    assert body["error"]["code"] == "file_too_large"
    assert platform.tenant_keys(platform.tenant_id(headers)) == set()


@pytest.mark.parametrize(
    ("kind", "codes"),
    [
        ("corrupt_header", {"corrupt_video", "not_a_video"}),
        ("truncated", {"corrupt_video", "decode_failed"}),
        ("audio_only", {"no_video_stream"}),
        ("absurd_duration", {"limit_exceeded"}),
    ],
)
def test_accepted_then_failed_with_code(
    platform: Stack, tmp_path: Path, two_segment_video: FaceVideo, kind: str, codes: set[str]
) -> None:
    headers = platform.new_key()
    path = make_bad_media(kind, tmp_path / f"{kind}.mp4")

    created = platform.submit(headers, path)
    job = platform.wait_job(headers, created["id"])
    # The worker survives the bad file and analyses the next one.
    healthy = platform.wait_job(headers, platform.submit(headers, two_segment_video.path)["id"])

    assert job["status"] == "failed", job
    assert job["error"]["code"] in codes, job["error"]
    assert job["error"]["message"]
    assert job["attempts"] == 1  # input errors are not retried
    assert healthy["status"] == "succeeded"
