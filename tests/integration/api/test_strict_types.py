"""Numbers in JSON bodies are JSON numbers: ``true``, ``"5"`` or ``5.0`` where a count is asked is a
typed 422, never read as 1 or 5. Multipart form fields and query parameters are text and are
read as numbers when they spell one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

Headers = Callable[..., dict[str, str]]

NOT_A_COUNT = [True, False, "1000", 1000.0, None, [1000]]
NOT_A_RATE = [True, False, "2", [2]]


@pytest.mark.parametrize("size", NOT_A_COUNT)
def test_upload_size_must_be_a_json_integer(client: TestClient, make_key: Headers, size: Any) -> None:
    response = client.post("/v1/uploads", json={"size_bytes": size}, headers=make_key())

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert "size_bytes" in response.json()["error"]["message"]


@pytest.mark.parametrize("field", ["sample_fps", "segment_seconds"])
@pytest.mark.parametrize("value", NOT_A_RATE)
def test_job_options_must_be_json_numbers(
    client: TestClient, make_key: Headers, field: str, value: Any
) -> None:
    headers = make_key()
    job = client.post("/v1/jobs", json={"source": "s3://client-videos/a.mp4", field: value}, headers=headers)
    batch = client.post(
        "/v1/batches", json={"items": [{"source": "s3://client-videos/a.mp4"}], field: value}, headers=headers
    )

    for response in (job, batch):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "validation_error"
        assert field in response.json()["error"]["message"]


def test_numbers_still_pass_as_json_numbers_and_as_form_text(
    client: TestClient, make_key: Headers, small_video: bytes
) -> None:
    headers = make_key()
    upload = client.post("/v1/uploads", json={"size_bytes": 1000}, headers=headers)
    job = client.post(
        "/v1/jobs",
        json={"source": "https://cdn.example.com/a.mp4", "sample_fps": 2, "segment_seconds": 5.5},
        headers=headers,
    )
    form = client.post(
        "/v1/jobs",
        data={"sample_fps": "2", "segment_seconds": "5"},
        files={"file": ("clip.mp4", small_video, "video/mp4")},
        headers=headers,
    )

    assert upload.status_code == 201, upload.text
    assert job.status_code == 202, job.text
    assert form.status_code == 202, form.text
