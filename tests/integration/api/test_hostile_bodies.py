"""Hostile request bodies against a real API process (uvicorn on a port, raw sockets):

- a huge body without a valid key is refused from its headers, unread, on every route;
- a chunked body stops being read at its route's cap (413);
- a body short of its Content-Length, or trickled, ends at the read deadline (408);
- a direct upload's PUT that finishes after a job consumed the upload does not replace the job's
  object (409), and the job keeps the bytes, size and hash it was created with.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from core.config import Settings, load_settings
from core.db import get_session_factory
from core.keys import create_api_key
from core.models import Job
from core.storage import get_object_store
from tests.utils.hostile_requests import raw_request_head, read_answer, send_chunks_until_answered
from tests.utils.platform import (
    REDIS_URL,
    ServiceProcess,
    clear_broker_keys,
    fresh_database,
    make_small_video,
    platform_env,
    start_api,
)

pytestmark = pytest.mark.integration

BODY_TIMEOUT_S = 2.0
BODY_IDLE_TIMEOUT_S = 1.5
HUGE = 400 * 1024 * 1024


@dataclass
class Api:
    process: ServiceProcess
    base_url: str
    settings: Settings

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.base_url)
        assert parts.hostname is not None and parts.port is not None
        return parts.hostname, parts.port

    def key(self) -> str:
        with get_session_factory(self.settings)() as session:
            return create_api_key(session, tenant_name=f"t-{secrets.token_hex(4)}").key

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("hostile-bodies")
    prefix = f"dfs-test-bodies-{secrets.token_hex(4)}:"
    limits = {
        "BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "BODY_IDLE_TIMEOUT_S": str(BODY_IDLE_TIMEOUT_S),
        "UPLOAD_BODY_TIMEOUT_S": "30",
        "MAX_UPLOAD_BYTES": "5000000",
    }
    with fresh_database() as database_url:
        env = platform_env(
            database_url=database_url,
            storage_url=(root / "storage").as_uri(),
            broker_key_prefix=prefix,
            work_dir=root / "work",
            extra=limits,
        )
        process, base_url = start_api(env, log_dir=root / "logs")
        try:
            settings = load_settings(
                environment="test",
                database_url=database_url,
                broker_url=REDIS_URL,
                broker_key_prefix=prefix,
                storage_url=env["STORAGE_URL"],
                work_dir=root / "work",
                **{name.lower(): value for name, value in limits.items()},
            )
            yield Api(process=process, base_url=base_url, settings=settings)
            crashed = [line for line in process.log_text().splitlines() if '"status": 5' in line]
            assert not crashed, "the API answered 5xx:\n" + "\n".join(crashed[:10])
        finally:
            process.stop()
            clear_broker_keys(prefix)


ROUTES = [
    ("POST", "/v1/uploads", "application/json"),
    ("POST", "/v1/webhooks", "application/json"),
    ("POST", "/v1/jobs", "application/json"),
    ("POST", "/v1/jobs", "multipart/form-data; boundary=x"),
    ("POST", "/v1/batches", "text/csv"),
    ("PUT", "/v1/uploads/00000000-0000-0000-0000-000000000000", "application/octet-stream"),
]


@pytest.mark.parametrize(("method", "path", "content_type"), ROUTES)
@pytest.mark.parametrize("authorization", [None, "Bearer dfs_not-a-key"])
def test_unauthenticated_huge_body_is_refused_unread(
    api: Api, method: str, path: str, content_type: str, authorization: str | None
) -> None:
    """400 MB announced without a valid key: 401 at once, from the headers, with a few bytes
    sent. Before, the API read (and parsed) the whole body before the key check."""
    headers = {"Content-Type": content_type, "Content-Length": str(HUGE)}
    if authorization is not None:
        headers["Authorization"] = authorization
    before = api.rss_mb()
    started = time.monotonic()
    with socket.create_connection(api.address, timeout=10) as sock:
        sock.sendall(raw_request_head(method, path, api.base_url, headers) + b"{" * 1024)
        status, body, raw = read_answer(sock, timeout_s=10)
    elapsed = time.monotonic() - started

    assert status == 401, raw[:300]
    assert body["error"]["code"] in ("missing_api_key", "invalid_api_key")  # type: ignore[index]
    assert b"connection: close" in raw.lower()
    assert elapsed < 5
    assert api.rss_mb() - before < 20


def test_unauthenticated_chunked_body_is_refused_unread(api: Api) -> None:
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    with socket.create_connection(api.address, timeout=10) as sock:
        sock.sendall(
            raw_request_head("POST", "/v1/webhooks", api.base_url, headers)
            + b"400\r\n"
            + b"[" * 1024
            + b"\r\n"
        )
        status, body, _ = read_answer(sock, timeout_s=10)

    assert status == 401
    assert body["error"]["code"] == "missing_api_key"  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "content_type", "code"),
    [
        ("/v1/webhooks", "application/json", "body_too_large"),
        ("/v1/uploads", "application/json", "body_too_large"),
        ("/v1/jobs", "application/json", "body_too_large"),
    ],
)
def test_chunked_body_stops_at_the_cap(api: Api, path: str, content_type: str, code: str) -> None:
    """An endless chunked body with a valid key: 413 once the route's cap is read, and the rest
    never read (before, /v1/webhooks and /v1/uploads read all of it)."""
    headers = {
        "Authorization": f"Bearer {api.key()}",
        "Content-Type": content_type,
        "Transfer-Encoding": "chunked",
    }
    before = api.rss_mb()
    with socket.create_connection(api.address, timeout=10) as sock:
        sock.sendall(raw_request_head("POST", path, api.base_url, headers))
        sent = send_chunks_until_answered(sock, b" " * 65536, limit_bytes=HUGE)
        status, body, raw = read_answer(sock, timeout_s=10)

    assert status == 413, raw[:300]
    assert body["error"]["code"] == code  # type: ignore[index]
    assert sent < 64 * 1024 * 1024, f"{sent} bytes went out before the answer"
    assert api.rss_mb() - before < 40


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/v1/webhooks", "application/json"), ("/v1/batches", "application/json")],
)
def test_body_short_of_its_length_ends_at_the_deadline(api: Api, path: str, content_type: str) -> None:
    """Content-Length 1000 and 10 bytes sent, then silence: 408 after the idle timeout, not a
    connection held until the client gives up."""
    headers = {"Authorization": f"Bearer {api.key()}", "Content-Type": content_type, "Content-Length": "1000"}
    started = time.monotonic()
    with socket.create_connection(api.address, timeout=10) as sock:
        sock.sendall(raw_request_head("POST", path, api.base_url, headers) + b'{"url": "h')
        status, body, raw = read_answer(sock, timeout_s=15)
    elapsed = time.monotonic() - started

    assert status == 408, raw[:300]
    assert body["error"]["code"] == "body_timeout"  # type: ignore[index]
    assert BODY_IDLE_TIMEOUT_S - 0.2 < elapsed < BODY_TIMEOUT_S + 3


def test_trickled_body_ends_at_the_total_deadline(api: Api) -> None:
    """One byte every 0.3 s never trips the idle timeout; BODY_TIMEOUT_S still ends the body."""
    headers = {
        "Authorization": f"Bearer {api.key()}",
        "Content-Type": "application/json",
        "Content-Length": "500",
    }
    answered = threading.Event()
    started = time.monotonic()
    with socket.create_connection(api.address, timeout=15) as sock:
        sock.sendall(raw_request_head("POST", "/v1/webhooks", api.base_url, headers))

        def trickle() -> None:
            for _ in range(100):
                if answered.wait(0.3):
                    return
                with contextlib.suppress(OSError):
                    sock.sendall(b" ")

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        status, body, raw = read_answer(sock, timeout_s=15)
        answered.set()
        thread.join(5)
    elapsed = time.monotonic() - started

    assert status == 408, raw[:300]
    assert body["error"]["code"] == "body_timeout"  # type: ignore[index]
    assert "did not arrive within" in body["error"]["message"]  # type: ignore[index]
    assert BODY_TIMEOUT_S - 0.2 < elapsed < BODY_TIMEOUT_S + 3


def test_small_bodies_still_pass(api: Api) -> None:
    with httpx.Client(base_url=api.base_url, headers={"Authorization": f"Bearer {api.key()}"}) as client:
        reserved = client.post("/v1/uploads", json={"size_bytes": 1000})
    assert reserved.status_code == 201, reserved.text


def test_a_put_finishing_after_the_job_does_not_swap_its_video(api: Api, tmp_path: Path) -> None:
    """A slow PUT started before POST /v1/jobs and finished after it: before, it replaced the
    object the job analyses (and the job still reported the first size)."""
    first = make_small_video(tmp_path / "first.mp4", seconds=1.0).read_bytes()
    second = make_small_video(tmp_path / "second.mp4", seconds=2.0, size="96x64").read_bytes()
    key = api.key()
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api.base_url, headers=auth, timeout=30) as client:
        reserved = client.post("/v1/uploads", json={"size_bytes": max(len(first), len(second))})
        assert reserved.status_code == 201, reserved.text
        upload_id = reserved.json()["upload_id"]
        stored = client.put(f"/v1/uploads/{upload_id}", content=first)
        assert stored.status_code == 200, stored.text

        with socket.create_connection(api.address, timeout=30) as slow:
            headers = {**auth, "Content-Type": "video/mp4", "Content-Length": str(len(second))}
            slow.sendall(
                raw_request_head("PUT", f"/v1/uploads/{upload_id}", api.base_url, headers) + second[:1000]
            )
            time.sleep(0.3)  # the PUT is under way
            job = client.post("/v1/jobs", json={"upload_id": upload_id})
            assert job.status_code == 202, job.text
            slow.sendall(second[1000:])
            status, body, raw = read_answer(slow, timeout_s=30)

    assert status == 409, raw[:300]
    assert body["error"]["code"] == "upload_consumed"  # type: ignore[index]
    with get_session_factory(api.settings)() as session:
        video = session.get(Job, job.json()["id"]).video  # type: ignore[union-attr]
        recorded = (video.storage_key, video.size_bytes, video.sha256)
    storage = get_object_store(api.settings)
    kept = storage.local_path(recorded[0])
    assert kept is not None and kept.read_bytes() == first
    assert recorded[1:] == (len(first), hashlib.sha256(first).hexdigest())
    # Only the job's object is left under the upload's folder: the late PUT's bytes were dropped.
    folder = kept.parent
    assert [path.name for path in folder.iterdir()] == [kept.name]
