"""The whole platform for monitoring and browser tests: a fresh PostgreSQL database, a moto S3
server, one real worker (with its metrics port) and the API under uvicorn; with admin and tenant
keys. Built on tests.utils.platform; nothing here skips."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from core.config import Settings
from core.db import get_session_factory
from core.keys import create_api_key
from tests.utils.platform import (
    ServiceProcess,
    clear_broker_keys,
    create_bucket,
    free_port,
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

__all__ = ["TERMINAL", "Stack", "running_stack"]

TERMINAL = ("succeeded", "failed", "canceled")
_BUCKET = "dfs-monitoring"

_FAST_SETTINGS = {
    "TASK_SOFT_TIME_LIMIT_S": "120",
    "TASK_TIME_LIMIT_S": "150",
    "BROKER_VISIBILITY_TIMEOUT_S": "300",
    "RECONCILE_INTERVAL_S": "5",
    "DEFAULT_SAMPLE_FPS": "2",
    "DEFAULT_SEGMENT_SECONDS": "1",
    "MAX_UPLOAD_BYTES": "5000000",
    "RESOURCE_REPORT_INTERVAL_S": "1",
    "EXPLAIN_TOP_K": "3",
}


@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    settings: Settings
    api: ServiceProcess
    worker: ServiceProcess
    worker_name: str
    metrics_port: int
    s3_endpoint: str
    bucket: str

    def session(self) -> Session:
        return get_session_factory(self.settings)()

    def new_key(self, *, admin: bool = False, tenant: str | None = None) -> dict[str, str]:
        with self.session() as session:
            created = create_api_key(
                session, tenant_name=tenant or f"tenant-{secrets.token_hex(4)}", admin=admin
            )
        return {"Authorization": f"Bearer {created.key}"}

    def client(self, headers: Mapping[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=dict(headers or {}), timeout=30.0)

    def submit(self, headers: Mapping[str, str], path: Path, **fields: str) -> dict[str, Any]:
        with self.client(headers) as client:
            response = client.post(
                "/v1/jobs", files={"file": (path.name, path.read_bytes(), "video/mp4")}, data=fields
            )
        assert response.status_code == 202, response.text
        return dict(response.json())

    def wait_job(
        self, headers: Mapping[str, str], job_id: str, *, timeout_s: float = 180.0
    ) -> dict[str, Any]:
        with self.client(headers) as client:

            def done() -> dict[str, Any] | None:
                job = client.get(f"/v1/jobs/{job_id}").json()
                return job if job["status"] in TERMINAL else None

            try:
                return dict(wait_for(done, timeout_s=timeout_s, what=f"job {job_id} to end", interval_s=0.25))
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- worker log ---\n{self.worker.tail(40)}") from None

    def tenant_id(self, headers: Mapping[str, str]) -> uuid.UUID:
        from core.keys import authenticate

        with self.session() as session:
            key = authenticate(session, key=headers["Authorization"].split(" ", 1)[1])
            assert key is not None
            return key.tenant_id

    def stored_keys(self, prefix: str = "") -> set[str]:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        listing = client.list_objects_v2(Bucket=self.bucket, Prefix=self.settings.storage_prefix + prefix)
        return {item["Key"] for item in listing.get("Contents", [])}


@contextlib.contextmanager
def running_stack(
    root: Path, *, extra: Mapping[str, str] | None = None, worker_name: str = "monitor"
) -> Iterator[Stack]:
    """Everything up, torn down afterwards; the API's log must show no 5xx answer."""
    log_dir = root / "logs"
    model = make_test_checkpoint(root / "model.safetensors")
    prefix = f"dfs-test-{secrets.token_hex(4)}:"
    metrics_port = free_port()
    with fresh_database() as database_url, moto_s3_server(log_dir) as endpoint:
        create_bucket(endpoint, _BUCKET)
        env = platform_env(
            database_url=database_url,
            storage_url=f"s3://{_BUCKET}/platform",
            broker_key_prefix=prefix,
            work_dir=root / "work",
            s3_endpoint=endpoint,
            model_path=model,
            extra={**_FAST_SETTINGS, "WORKER_METRICS_PORT": str(metrics_port), **(extra or {})},
        )
        worker = start_worker(env, log_dir=log_dir, name=worker_name)
        api: ServiceProcess | None = None
        try:
            api, base_url = start_api(env, log_dir=log_dir)
            yield Stack(
                base_url=base_url,
                env=env,
                settings=settings_from_env(env),
                api=api,
                worker=worker,
                worker_name=worker_name,
                metrics_port=metrics_port,
                s3_endpoint=endpoint,
                bucket=_BUCKET,
            )
            errors = server_error_lines(api.log_text())
            assert not errors, "the API answered 5xx:\n" + "\n".join(errors[:10])
        finally:
            if api is not None:
                api.stop()
            worker.stop()
            clear_broker_keys(prefix)
