"""The whole platform for integration tests: PostgreSQL (a fresh database), Redis (a key prefix of
its own), a moto S3 server, the API under uvicorn and one real Celery worker, shared by the tests
of a run. Videos are generated here; the model is a randomly initialised small checkpoint."""

from __future__ import annotations

import contextlib
import secrets
import socket
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from celery import Celery
from sqlalchemy.orm import Session

from core.config import Settings
from core.db import get_session_factory
from core.keys import create_api_key
from core.queue import make_celery
from tests.utils.media import FaceVideo, make_face_video
from tests.utils.platform import (
    ServiceProcess,
    clear_broker_keys,
    create_bucket,
    fresh_database,
    make_test_checkpoint,
    moto_s3_server,
    platform_env,
    server_error_lines,
    settings_from_env,
    start_api,
    start_worker,
    wait_for,
)

STORAGE_BUCKET = "dfs-test"
SOURCE_BUCKET = "client-videos"
MAX_UPLOAD_BYTES = 2_000_000
MAX_ATTEMPTS = 3
WORKER_NAME = "worker1"
TERMINAL = ("succeeded", "failed", "canceled")

# Small limits and fast clocks so that faults and retries show within seconds.
TEST_SETTINGS = {
    "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
    "MAX_DURATION_S": "600",
    "SOURCE_BUCKETS": SOURCE_BUCKET,
    "MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "RETRY_BACKOFF_S": "1",
    "TASK_SOFT_TIME_LIMIT_S": "120",
    "TASK_TIME_LIMIT_S": "150",
    "BROKER_VISIBILITY_TIMEOUT_S": "300",
    "BROKER_RESTORE_INTERVAL_S": "5",
    "RECONCILE_INTERVAL_S": "2",
    "RECONCILE_QUEUED_AFTER_S": "8",
    "DEFAULT_SAMPLE_FPS": "2",
    "DEFAULT_SEGMENT_SECONDS": "2",
}


@dataclass
class Platform:
    base_url: str
    env: dict[str, str]
    settings: Settings
    s3_endpoint: str
    log_dir: Path
    media_dir: Path
    api: ServiceProcess
    worker: ServiceProcess
    _celery: Celery | None = field(default=None, repr=False)

    @property
    def node(self) -> str:
        return f"{WORKER_NAME}@{socket.gethostname()}"

    @property
    def celery(self) -> Celery:
        if self._celery is None:
            self._celery = make_celery(self.settings)
        return self._celery

    def session(self) -> Session:
        return get_session_factory(self.settings)()

    def s3(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stored_keys(self, tenant_id: uuid.UUID | str | None = None) -> set[str]:
        prefix = self.settings.storage_prefix + (f"videos/{tenant_id}/" if tenant_id else "")
        listing = self.s3().list_objects_v2(Bucket=STORAGE_BUCKET, Prefix=prefix)
        return {item["Key"] for item in listing.get("Contents", [])}

    def new_key(self, tenant: str | None = None) -> dict[str, str]:
        with self.session() as session:
            created = create_api_key(session, tenant_name=tenant or f"tenant-{secrets.token_hex(4)}")
        return {"Authorization": f"Bearer {created.key}"}

    def tenant_id(self, headers: dict[str, str]) -> uuid.UUID:
        from core.keys import authenticate

        with self.session() as session:
            key = authenticate(session, key=headers["Authorization"].split(" ", 1)[1])
            assert key is not None
            return key.tenant_id

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=headers or {}, timeout=30.0)

    def submit(
        self, headers: dict[str, str], path: Path, *, expect: int = 202, **fields: str
    ) -> dict[str, Any]:
        with self.client(headers) as client:
            response = client.post(
                "/v1/jobs", files={"file": (path.name, path.read_bytes(), "video/mp4")}, data=fields
            )
        assert response.status_code == expect, response.text
        return dict(response.json())

    def wait_job(
        self,
        headers: dict[str, str],
        job_id: str,
        *,
        statuses: tuple[str, ...] = TERMINAL,
        timeout_s: float = 120.0,
    ) -> dict[str, Any]:
        with self.client(headers) as client:

            def done() -> dict[str, Any] | None:
                job = client.get(f"/v1/jobs/{job_id}").json()
                return job if job["status"] in statuses else None

            try:
                return dict(
                    wait_for(
                        done, timeout_s=timeout_s, what=f"job {job_id} to reach {statuses}", interval_s=0.2
                    )
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- worker log ---\n{self.worker.tail(40)}") from None

    def pause_queue(self, queue: str) -> None:
        replies = self.celery.control.cancel_consumer(queue, destination=[self.node], reply=True, timeout=5)
        assert replies, f"worker {self.node} did not answer cancel_consumer"

    def resume_queue(self, queue: str) -> None:
        replies = self.celery.control.add_consumer(queue, destination=[self.node], reply=True, timeout=5)
        assert replies, f"worker {self.node} did not answer add_consumer"

    def restart_worker(self) -> None:
        """Starts the worker again (same node name) after a test stopped or killed it."""
        self.worker.stop()
        self.worker = start_worker(self.env, log_dir=self.log_dir, name=WORKER_NAME)

    def face_video(self, name: str, **options: Any) -> FaceVideo:
        path = self.media_dir / name
        options.setdefault("seconds", 3.0)
        options.setdefault("width", 320)
        options.setdefault("height", 240)
        options.setdefault("fps", 10.0)
        return make_face_video(path, **options)


@contextlib.contextmanager
def running_platform(
    root: Path,
    *,
    storage_path: str,
    extra: Mapping[str, str],
    prefix_tag: str = "",
    queues: str | None = None,
) -> Iterator[Platform]:
    """A fresh database, moto S3 with both buckets, the API and one worker, torn down afterwards;
    whatever the tests sent, the API never answered 5xx (its access log has every status)."""
    log_dir = root / "logs"
    model = make_test_checkpoint(root / "model.safetensors")
    prefix = f"dfs-test-{prefix_tag}{secrets.token_hex(4)}:"
    with fresh_database() as database_url, moto_s3_server(log_dir) as endpoint:
        create_bucket(endpoint, STORAGE_BUCKET)
        create_bucket(endpoint, SOURCE_BUCKET)
        env = platform_env(
            database_url=database_url,
            storage_url=f"s3://{STORAGE_BUCKET}/{storage_path}",
            broker_key_prefix=prefix,
            work_dir=root / "work",
            s3_endpoint=endpoint,
            model_path=model,
            extra=extra,
        )
        worker_options = {"queues": queues} if queues else {}
        worker = start_worker(env, log_dir=log_dir, name=WORKER_NAME, **worker_options)
        api: ServiceProcess | None = None
        platform: Platform | None = None
        try:
            api, base_url = start_api(env, log_dir=log_dir)
            media_dir = root / "media"
            media_dir.mkdir()
            platform = Platform(
                base_url=base_url,
                env=env,
                settings=settings_from_env(env),
                s3_endpoint=endpoint,
                log_dir=log_dir,
                media_dir=media_dir,
                api=api,
                worker=worker,
            )
            yield platform
            errors = server_error_lines(api.log_text())
            assert not errors, "the API answered 5xx:\n" + "\n".join(errors[:10])
        finally:
            if api is not None:
                api.stop()
            (platform.worker if platform is not None else worker).stop()
            clear_broker_keys(prefix)


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("platform")
    with running_platform(root, storage_path="platform", extra=TEST_SETTINGS) as up:
        yield up


@pytest.fixture(scope="session")
def two_segment_video(platform: Platform) -> FaceVideo:
    """3 s with one face moving across; with segment_seconds=1.5 it makes exactly two segments."""
    return platform.face_video("two-segments.mp4", seconds=3.0)
