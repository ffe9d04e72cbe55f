"""GET /v1/jobs/{id}/image against a real API process: the picture is passed on from storage a
piece at a time, so many large pictures read at once (by slow clients) leave the API's memory
flat. Before, each request read its whole picture into memory (30 requests of a 60 MiB picture
took the API from 143 to 1,944 MB)."""

from __future__ import annotations

import hashlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from core.config import load_settings
from core.db import get_session_factory
from core.keys import create_api_key
from core.models import Job
from tests.utils.hostile_requests import raw_request_head
from tests.utils.images import astronaut, encode
from tests.utils.platform import (
    REDIS_URL,
    ServiceProcess,
    clear_broker_keys,
    fresh_database,
    platform_env,
    start_api,
)

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PICTURE_BYTES = 40 * MIB
READERS = 6


def _rss_mb(process: ServiceProcess) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def picture_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, str, str, bytes]]:
    """(the API, its URL, the Authorization header, the picture) for an image job whose stored
    picture is a JPEG padded to 40 MiB (bytes after its end, which viewers ignore)."""
    root = tmp_path_factory.mktemp("image-stream")
    prefix = f"dfs-test-image-stream-{secrets.token_hex(4)}:"
    storage = root / "storage"
    with fresh_database() as database_url:
        env = platform_env(
            database_url=database_url,
            storage_url=storage.as_uri(),
            broker_key_prefix=prefix,
            work_dir=root / "work",
        )
        settings = load_settings(database_url=database_url, broker_url=REDIS_URL, broker_key_prefix=prefix)
        with get_session_factory(settings)() as session:
            authorization = f"Bearer {create_api_key(session, tenant_name='pictures').key}"
        process, base_url = start_api(env, log_dir=root / "logs")
        try:
            photo = encode(Image.fromarray(astronaut()), "JPEG")
            created = httpx.post(
                f"{base_url}/v1/jobs",
                headers={"Authorization": authorization},
                files={"file": ("photo.jpg", photo, "image/jpeg")},
                timeout=30,
            )
            assert created.status_code == 202, created.text
            assert created.json()["media_type"] == "image"
            with get_session_factory(settings)() as session:
                job = session.get(Job, created.json()["id"])
                assert job is not None and job.video.storage_key is not None
                stored = storage / job.video.storage_key
            padded = photo + bytes(PICTURE_BYTES - len(photo))
            stored.write_bytes(padded)
            yield process, base_url, authorization, padded
            crashed = [line for line in process.log_text().splitlines() if '"status": 5' in line]
            assert not crashed, "the API answered 5xx:\n" + "\n".join(crashed[:10])
        finally:
            process.stop()
            clear_broker_keys(prefix)


def test_the_picture_is_served_whole(picture_job: tuple[ServiceProcess, str, str, bytes]) -> None:
    _, base_url, authorization, padded = picture_job
    job_id = _job_id(base_url, authorization)

    answer = httpx.get(
        f"{base_url}/v1/jobs/{job_id}/image", headers={"Authorization": authorization}, timeout=60
    )

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/jpeg"
    assert answer.headers["content-length"] == str(len(padded))
    assert hashlib.sha256(answer.content).digest() == hashlib.sha256(padded).digest()


def test_slow_readers_of_a_large_picture_leave_the_api_memory_flat(
    picture_job: tuple[ServiceProcess, str, str, bytes],
) -> None:
    process, base_url, authorization, _ = picture_job
    job_id = _job_id(base_url, authorization)
    host, port = base_url.removeprefix("http://").split(":")
    head = raw_request_head("GET", f"/v1/jobs/{job_id}/image", base_url, {"Authorization": authorization})
    before = _rss_mb(process)
    peak = before
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _rss_mb(process))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sockets = []
    try:
        for _ in range(READERS):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.sendall(head)
            sockets.append(sock)
        # Each client reads a little, slowly: the API holds what it has not sent yet.
        for _ in range(10):
            for sock in sockets:
                assert sock.recv(16 * 1024)
            time.sleep(0.2)
    finally:
        stop.set()
        sampler.join()
        for sock in sockets:
            sock.close()

    growth = peak - before
    # Whole pictures in memory would be READERS × 40 MiB = 240 MiB.
    assert growth < 40, f"API RSS grew {growth:.0f} MB with {READERS} readers of a 40 MiB picture"


def _job_id(base_url: str, authorization: str) -> str:
    jobs = httpx.get(f"{base_url}/v1/jobs", headers={"Authorization": authorization}, timeout=30).json()
    return str(jobs["items"][0]["id"])
