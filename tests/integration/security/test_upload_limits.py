"""Size caps on everything a client sends: a multipart upload (with or without Content-Length, or
with one that announces more than the cap), a direct upload past its reservation, JSON and batch
bodies. Each is refused with 413 and a typed code, and nothing is stored."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from api.services.images import json_body_limit
from core.models import Job
from tests.integration.security.conftest import BATCH_BODY_MAX_BYTES, MAX_UPLOAD_BYTES
from tests.utils.stack import PrivateStack

pytestmark = pytest.mark.integration

MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def _oversized() -> bytes:
    return MP4_HEAD + b"\x00" * (MAX_UPLOAD_BYTES + 1 - len(MP4_HEAD))


def _assert_nothing_stored(stack: PrivateStack, headers: dict[str, str]) -> None:
    tenant_id = stack.tenant_id(headers)
    with stack.session() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id)) == 0
    assert stack.stored_keys(f"videos/{tenant_id}/") == set()


def test_multipart_past_the_cap_is_413(security_stack: PrivateStack) -> None:
    stack = security_stack
    headers = stack.new_key()
    with stack.client(headers) as client:
        response = client.post("/v1/jobs", files={"file": ("big.mp4", _oversized(), "video/mp4")})

    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "file_too_large"
    _assert_nothing_stored(stack, headers)


def test_chunked_multipart_past_the_cap_is_413(security_stack: PrivateStack) -> None:
    """No Content-Length: the cap is enforced on the bytes as they arrive."""
    stack = security_stack
    headers = stack.new_key()
    boundary = uuid.uuid4().hex

    def body() -> Iterator[bytes]:
        yield (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        data = _oversized()
        for start in range(0, len(data), 256 * 1024):
            yield data[start : start + 256 * 1024]
        yield f"\r\n--{boundary}--\r\n".encode()

    with stack.client(headers) as client:
        response = client.post(
            "/v1/jobs", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )

    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "file_too_large"
    _assert_nothing_stored(stack, headers)


def test_announced_size_past_the_cap_is_refused_before_the_body(security_stack: PrivateStack) -> None:
    """A Content-Length of 10 GB from a client that then sends nothing: answered within seconds,
    not held open waiting for a body that never comes."""
    stack = security_stack
    headers = stack.new_key()
    address = urlsplit(stack.base_url)
    request = (
        "POST /v1/jobs HTTP/1.1\r\n"
        f"Host: {address.netloc}\r\n"
        f"Authorization: {headers['Authorization']}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n"
        "Content-Length: 10000000000\r\n"
        "Connection: close\r\n\r\n"
        "--x\r\n"
    ).encode()
    started = time.monotonic()
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    elapsed = time.monotonic() - started

    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"413", answer[:300]
    assert b'"file_too_large"' in rest
    assert elapsed < 15, f"answered after {elapsed:.1f} s"
    _assert_nothing_stored(stack, headers)


def test_direct_upload_past_its_reservation_is_413(security_stack: PrivateStack) -> None:
    stack = security_stack
    headers = stack.new_key()
    with stack.client(headers) as client:
        too_big = client.post("/v1/uploads", json={"size_bytes": MAX_UPLOAD_BYTES + 1})
        reserved = client.post("/v1/uploads", json={"size_bytes": 1000, "filename": "small.mp4"})
        assert reserved.status_code == 201, reserved.text
        upload_id = reserved.json()["upload_id"]
        overflow = client.put(
            f"/v1/uploads/{upload_id}",
            content=MP4_HEAD + b"\x00" * 2000,
            headers={"Content-Type": "application/octet-stream"},
        )

    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "file_too_large"
    assert overflow.status_code == 413 and overflow.json()["error"]["code"] == "file_too_large"
    _assert_nothing_stored(stack, headers)


def test_json_and_batch_bodies_past_their_caps_are_413(security_stack: PrivateStack) -> None:
    stack = security_stack
    headers = stack.new_key()
    # A job's JSON body has room for an inline image (MAX_IMAGE_BASE64_BYTES as base64) besides.
    padding = "x" * (json_body_limit(stack.settings) + 1)
    items = [{"source": f"s3://client-videos/{index:06d}.mp4"} for index in range(BATCH_BODY_MAX_BYTES // 30)]
    with stack.client(headers) as client:
        job = client.post("/v1/jobs", json={"source": "s3://client-videos/a.mp4", "external_id": padding})
        batch = client.post("/v1/batches", json={"items": items})
        manifest = client.post(
            "/v1/batches",
            content="source,external_id\n" + "s3://client-videos/a.mp4,a\n" * (BATCH_BODY_MAX_BYTES // 20),
            headers={"Content-Type": "text/csv"},
        )

    for response in (job, batch, manifest):
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "body_too_large"
    _assert_nothing_stored(stack, headers)
