"""Direct uploads through the API (local storage): reserve a slot, send the bytes, create the job."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.integration.api.conftest import MAX_UPLOAD_BYTES

Headers = Callable[..., dict[str, str]]


def _reserve(client: TestClient, headers: dict[str, str], size: int, filename: str = "big.mp4") -> dict:
    response = client.post("/v1/uploads", headers=headers, json={"size_bytes": size, "filename": filename})
    assert response.status_code == 201, response.text
    return response.json()


def test_upload_through_api_then_create_job(
    client: TestClient, make_key: Headers, small_video: bytes
) -> None:
    headers = make_key()
    slot = _reserve(client, headers, len(small_video))
    assert slot["method"] == "PUT"
    assert slot["url"].endswith(f"/v1/uploads/{slot['upload_id']}")
    # The API's own route takes the caller's key; the answered headers hold no credential of
    # their own, so a client that sends them beside its key keeps the key.
    assert slot["send_api_key"] is True
    assert slot["headers"] == {"Content-Length": str(len(small_video))}

    put = client.put(slot["url"], headers={**headers, **slot["headers"]}, content=small_video)
    job = client.post("/v1/jobs", headers=headers, json={"upload_id": slot["upload_id"], "sample_fps": 1})
    reused = client.post("/v1/jobs", headers=headers, json={"upload_id": slot["upload_id"]})
    put_again = client.put(slot["url"], headers=headers, content=small_video)

    assert put.status_code == 200, put.text
    assert put.json() == {"upload_id": slot["upload_id"], "size_bytes": len(small_video), "container": "mp4"}
    assert job.status_code == 202, job.text
    assert job.json()["video"]["filename"] == "big.mp4"
    assert job.json()["video"]["size_bytes"] == len(small_video)
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "upload_consumed"
    assert put_again.status_code == 409 and put_again.json()["error"]["code"] == "upload_consumed"


def test_job_from_empty_upload_slot_is_409(client: TestClient, make_key: Headers) -> None:
    headers = make_key()
    slot = _reserve(client, headers, 1000)

    response = client.post("/v1/jobs", headers=headers, json={"upload_id": slot["upload_id"]})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "upload_incomplete"


def test_upload_past_declared_size_is_413(client: TestClient, make_key: Headers, small_video: bytes) -> None:
    headers = make_key()
    slot = _reserve(client, headers, len(small_video) - 100)

    response = client.put(slot["url"], headers=headers, content=small_video)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"


def test_reserving_past_the_limit_is_413(client: TestClient, make_key: Headers) -> None:
    response = client.post("/v1/uploads", headers=make_key(), json={"size_bytes": MAX_UPLOAD_BYTES + 1})

    assert response.status_code == 413


def test_other_tenants_upload_is_404(client: TestClient, make_key: Headers, small_video: bytes) -> None:
    owner, stranger = make_key(), make_key()
    slot = _reserve(client, owner, len(small_video))

    put = client.put(slot["url"], headers=stranger, content=small_video)
    job = client.post("/v1/jobs", headers=stranger, json={"upload_id": slot["upload_id"]})

    assert put.status_code == 404 and put.json()["error"]["code"] == "upload_not_found"
    assert job.status_code == 404 and job.json()["error"]["code"] == "upload_not_found"
