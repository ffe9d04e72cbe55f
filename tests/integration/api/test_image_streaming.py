"""GET /v1/jobs/{id}/image streams the picture from storage: many clients reading a large picture at
once cost the API a few chunks each, not the whole picture each (a real API process, its memory
read from /proc)."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from core.config import load_settings
from core.db import get_session_factory
from core.keys import create_api_key
from tests.utils.images import encode
from tests.utils.platform import (
    REDIS_URL,
    ServiceProcess,
    clear_broker_keys,
    fresh_database,
    platform_env,
    start_api,
)

pytestmark = pytest.mark.integration

PICTURE_BYTES = 48 * 1024 * 1024
READERS = 8


def _rss_mb(process: ServiceProcess) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, str, str]]:
    root = tmp_path_factory.mktemp("image-streaming")
    prefix = f"dfs-test-image-stream-{secrets.token_hex(4)}:"
    with fresh_database() as database_url:
        env = platform_env(
            database_url=database_url,
            storage_url=(root / "storage").as_uri(),
            broker_key_prefix=prefix,
            work_dir=root / "work",
            extra={"MAX_UPLOAD_BYTES": str(64 * 1024 * 1024), "UPLOAD_BODY_TIMEOUT_S": "120"},
        )
        process, base_url = start_api(env, log_dir=root / "logs")
        try:
            settings = load_settings(
                database_url=database_url, broker_url=REDIS_URL, broker_key_prefix=prefix
            )
            with get_session_factory(settings)() as session:
                key = create_api_key(session, tenant_name="pictures").key
            yield process, base_url, key
        finally:
            process.stop()
            clear_broker_keys(prefix)


def test_a_large_picture_is_streamed_to_many_readers(api: tuple[ServiceProcess, str, str]) -> None:
    process, base_url, key = api
    headers = {"Authorization": f"Bearer {key}"}
    photo = encode(Image.new("RGB", (64, 64), "grey"), "JPEG")
    picture = photo + bytes(PICTURE_BYTES - len(photo))  # a valid JPEG padded after its end
    created = httpx.post(
        f"{base_url}/v1/jobs",
        headers=headers,
        files={"file": ("big.jpg", picture, "image/jpeg")},
        timeout=120,
    )
    assert created.status_code == 202, created.text
    url = f"{base_url}/v1/jobs/{created.json()['id']}/image"
    before = _rss_mb(process)
    peak = before
    reading = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not reading.is_set():
            peak = max(peak, _rss_mb(process))
            time.sleep(0.02)

    def read_slowly(_: int) -> tuple[int, str, str]:
        digest = hashlib.sha256()
        with httpx.stream("GET", url, headers=headers, timeout=120) as response:
            for chunk in response.iter_bytes(1024 * 1024):
                digest.update(chunk)
                time.sleep(0.01)  # a slow client: whatever the API holds, it holds for a while
            return response.status_code, response.headers["content-type"], digest.hexdigest()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(READERS) as pool:
            answers = list(pool.map(read_slowly, range(READERS)))
    finally:
        reading.set()
        watcher.join()

    expected = hashlib.sha256(picture).hexdigest()
    assert answers == [(200, "image/jpeg", expected)] * READERS
    # Whole pictures held at once would be READERS × 48 MiB.
    assert peak - before < 100, f"the API grew {peak - before:.0f} MB serving {READERS} readers"
