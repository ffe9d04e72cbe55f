"""The whole platform as tests see it: API, workers and moto S3 on shared or private services.

``running_stack`` uses the machine's PostgreSQL and Redis; ``private_stack`` runs on private ones
that fault tests stop, kill and cut. ``Stack`` has the helpers to make keys, submit videos and
wait for jobs. Every stack checks on the way down that the API never answered 5xx. Nothing here
skips.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from celery import Celery
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.config import Settings
from core.db import get_session_factory
from core.keys import authenticate, create_api_key
from core.queue import make_celery
from tests.utils.media import FaceVideo, make_face_video
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
)
from tests.utils.services import PostgresCluster, RedisServer, TcpProxy, ffmpeg_fault_dir
from tests.utils.waiting import wait_for

__all__ = [
    "FAULT_SETTINGS",
    "PRIVATE_BUCKET",
    "QUICK_SETTINGS",
    "SOURCE_BUCKET",
    "TERMINAL",
    "PrivateStack",
    "Stack",
    "private_stack",
    "running_stack",
]

TERMINAL = ("succeeded", "failed", "canceled")
SOURCE_BUCKET = "client-videos"
PRIVATE_BUCKET = "dfs-private"  # the service's own bucket on a private stack

# Short limits and fast clocks for stacks that watch jobs go by (monitoring, the browser).
QUICK_SETTINGS = {
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

# Small limits and fast clocks so faults and retries show within seconds.
FAULT_SETTINGS = {
    "MAX_UPLOAD_BYTES": "5000000",
    "MAX_DURATION_S": "600",
    "MAX_ATTEMPTS": "3",
    "RETRY_BACKOFF_S": "2",
    "TASK_SOFT_TIME_LIMIT_S": "40",
    "TASK_TIME_LIMIT_S": "50",
    "BROKER_VISIBILITY_TIMEOUT_S": "120",
    "BROKER_RESTORE_INTERVAL_S": "5",
    "RECONCILE_INTERVAL_S": "2",
    # Longer than any backlog here waits: a message lost with the broker must be noticed as lost,
    # not re-sent because it is old.
    "RECONCILE_QUEUED_AFTER_S": "900",
    "DEFAULT_SAMPLE_FPS": "1",
    "DEFAULT_SEGMENT_SECONDS": "2",
    "EXPLAIN_TOP_K": "1",
    "SOURCE_BUCKETS": SOURCE_BUCKET,
}

_DUPLICATES_SQL = {
    table: text(
        f"SELECT count(*) - count(DISTINCT (job_id, {column})) FROM {table} WHERE job_id = ANY(:ids)"
    )
    for table, column in (("frames", "frame_index"), ("segments", "segment_index"), ("tracks", "track_id"))
}
_JOB_ID_FIELD = re.compile(r'"job_id": "([0-9a-f-]{36})"')


@dataclass(kw_only=True)
class Stack:
    """A running platform: its API, settings, storage and worker processes."""

    base_url: str
    env: dict[str, str]
    settings: Settings
    api: ServiceProcess
    s3_endpoint: str  # moto itself (a private stack's services reach it through a cuttable proxy)
    bucket: str
    log_dir: Path
    media_dir: Path
    workers: list[ServiceProcess] = field(default_factory=list)
    worker_names: list[str] = field(default_factory=list)
    metrics_port: int | None = None
    wait_timeout_s: float = 180.0
    _celery: Celery | None = field(default=None, repr=False)

    # -- database and storage, as the tests see them
    def session(self) -> Session:
        return get_session_factory(self.settings)()

    def s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stored_keys(self, prefix: str = "") -> set[str]:
        """Keys of the service's own bucket under ``prefix`` (after the storage prefix)."""
        listing = self.s3().list_objects_v2(Bucket=self.bucket, Prefix=self.settings.storage_prefix + prefix)
        return {item["Key"] for item in listing.get("Contents", [])}

    def tenant_keys(self, tenant_id: uuid.UUID | str) -> set[str]:
        """Everything stored for one tenant's videos."""
        return self.stored_keys(f"videos/{tenant_id}/")

    # -- the API
    def new_key(self, tenant: str | None = None, *, admin: bool = False) -> dict[str, str]:
        with self.session() as session:
            created = create_api_key(
                session, tenant_name=tenant or f"tenant-{secrets.token_hex(4)}", admin=admin
            )
        return {"Authorization": f"Bearer {created.key}"}

    def tenant_id(self, headers: Mapping[str, str]) -> uuid.UUID:
        with self.session() as session:
            key = authenticate(session, key=headers["Authorization"].split(" ", 1)[1])
            assert key is not None
            return key.tenant_id

    def client(self, headers: Mapping[str, str] | None = None, *, timeout_s: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=dict(headers or {}), timeout=timeout_s)

    def post_video(
        self, headers: Mapping[str, str], path: Path, *, filename: str | None = None, **fields: str
    ) -> httpx.Response:
        """POST /v1/jobs with the file as multipart, whatever the answer."""
        with self.client(headers) as client:
            return client.post(
                "/v1/jobs",
                files={"file": (filename or path.name, path.read_bytes(), "video/mp4")},
                data=fields,
            )

    def submit(
        self,
        headers: Mapping[str, str],
        path: Path,
        *,
        expect: int = 202,
        filename: str | None = None,
        **fields: str,
    ) -> dict[str, Any]:
        """POST /v1/jobs, checked to answer ``expect``; the answer's body."""
        response = self.post_video(headers, path, filename=filename, **fields)
        assert response.status_code == expect, response.text
        return dict(response.json())

    def job(self, headers: Mapping[str, str], job_id: str) -> dict[str, Any]:
        with self.client(headers) as client:
            response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_job(
        self,
        headers: Mapping[str, str],
        job_id: str,
        *,
        statuses: tuple[str, ...] = TERMINAL,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Polls the job until its status is one of ``statuses``; its last answer."""

        def reached() -> dict[str, Any] | None:
            job = self.job(headers, job_id)
            return job if job["status"] in statuses else None

        try:
            return dict(
                wait_for(
                    reached,
                    timeout_s=timeout_s or self.wait_timeout_s,
                    what=f"job {job_id} to reach {statuses}",
                    interval_s=0.25,
                )
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log ---\n{self.worker.tail(40)}") from None

    def api_server_errors(self, *, allow_unavailable: bool = False) -> list[str]:
        """API log lines of 5xx answers (503s only when not allowed) and crashed requests."""
        return server_error_lines(self.api.log_text(), allow_unavailable=allow_unavailable)

    # -- workers
    @property
    def worker(self) -> ServiceProcess:
        return self.workers[0]

    @property
    def worker_name(self) -> str:
        return self.worker_names[0]

    @property
    def node(self) -> str:
        """The first worker's Celery node name."""
        return f"{self.worker_name}@{socket.gethostname()}"

    @property
    def celery(self) -> Celery:
        if self._celery is None:
            self._celery = make_celery(self.settings)
        return self._celery

    def start_worker(
        self,
        name: str,
        *,
        beat: bool = False,
        env: Mapping[str, str] | None = None,
        queues: str = "probe,analyze,maintenance",
    ) -> ServiceProcess:
        worker = start_worker(
            {**self.env, **(env or {})}, log_dir=self.log_dir, name=name, beat=beat, queues=queues
        )
        self.workers.append(worker)
        self.worker_names.append(name)
        return worker

    def restart_worker(self, index: int = 0) -> ServiceProcess:
        """Starts worker ``index`` again under its name and queues (after a test stopped or killed it)."""
        old = self.workers[index]
        old.stop()
        worker = start_worker(
            old.env,
            log_dir=self.log_dir,
            name=self.worker_names[index],
            beat="--beat" in old.argv,
            queues=old.argv[old.argv.index("--queues") + 1],
        )
        self.workers[index] = worker
        return worker

    def worker_logs(self) -> str:
        return "\n".join(worker.log_text() for worker in self.workers)

    def pause_queue(self, queue: str) -> None:
        replies = self.celery.control.cancel_consumer(queue, destination=[self.node], reply=True, timeout=5)
        assert replies, f"worker {self.node} did not answer cancel_consumer"

    def resume_queue(self, queue: str) -> None:
        replies = self.celery.control.add_consumer(queue, destination=[self.node], reply=True, timeout=5)
        assert replies, f"worker {self.node} did not answer add_consumer"

    # -- what happened to jobs
    def duplicate_rows(self, job_ids: Iterable[uuid.UUID]) -> dict[str, int]:
        """Rows stored more than once for these jobs, per table (0 everywhere when all is well)."""
        ids = list(job_ids)
        with self.session() as session:
            counts = {table: session.scalar(sql, {"ids": ids}) for table, sql in _DUPLICATES_SQL.items()}
        return {table: int(count or 0) for table, count in counts.items()}

    def finalized_counts(self, job_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
        """How many times each job was finalized, read from the workers' logs."""
        wanted = {str(job_id): job_id for job_id in job_ids}
        counts = dict.fromkeys(wanted.values(), 0)
        for line in self.worker_logs().splitlines():
            if '"job.finalize.succeeded"' not in line:
                continue
            match = _JOB_ID_FIELD.search(line)
            if match and match.group(1) in wanted:
                counts[wanted[match.group(1)]] += 1
        return counts

    # -- media
    def face_video(self, name: str, **options: Any) -> FaceVideo:
        """A video with a face (``tests.utils.media.make_face_video``), 3 s of 320×240 by default."""
        options.setdefault("seconds", 3.0)
        options.setdefault("width", 320)
        options.setdefault("height", 240)
        options.setdefault("fps", 10.0)
        return make_face_video(self.media_dir / name, **options)


@dataclass(kw_only=True)
class PrivateStack(Stack):
    """A stack on private services: its Redis, PostgreSQL and the proxy in front of moto S3."""

    root: Path
    redis: RedisServer
    postgres: PostgresCluster
    storage_proxy: TcpProxy


@contextlib.contextmanager
def running_stack(
    root: Path,
    *,
    settings: Mapping[str, str],
    bucket: str = "dfs-test",
    storage_path: str = "platform",
    source_bucket: str | None = None,
    worker_name: str = "worker1",
    queues: str | None = None,
    prefix_tag: str = "",
    metrics: bool = False,
    wait_timeout_s: float = 180.0,
    storage_url: str | None = None,
) -> Iterator[Stack]:
    """A fresh database on the machine's PostgreSQL, Redis under a key prefix of its own, moto S3
    (with ``source_bucket`` when given), one worker (``metrics``: with its metrics port) and the API;
    torn down afterwards. The service stores its videos in ``bucket`` unless ``storage_url`` names
    other storage (a ``file://`` directory, as ``./scripts/platform`` does); moto still serves the
    source bucket."""
    log_dir = root / "logs"
    model = make_test_checkpoint(root / "model.safetensors")
    prefix = f"dfs-test-{prefix_tag}{secrets.token_hex(4)}:"
    metrics_port = free_port() if metrics else None
    extra = dict(settings)
    if metrics_port is not None:
        extra = {"WORKER_METRICS_PORT": str(metrics_port), **extra}
    with fresh_database() as database_url, moto_s3_server(log_dir) as endpoint:
        for name in (bucket, source_bucket):
            if name:
                create_bucket(endpoint, name)
        env = platform_env(
            database_url=database_url,
            storage_url=storage_url or f"s3://{bucket}/{storage_path}",
            broker_key_prefix=prefix,
            work_dir=root / "work",
            s3_endpoint=endpoint,
            model_path=model,
            extra=extra,
        )
        queue_option = {"queues": queues} if queues else {}
        worker = start_worker(env, log_dir=log_dir, name=worker_name, **queue_option)
        stack: Stack | None = None
        try:
            api, base_url = start_api(env, log_dir=log_dir)
            media_dir = root / "media"
            media_dir.mkdir()
            stack = Stack(
                base_url=base_url,
                env=env,
                settings=settings_from_env(env),
                api=api,
                s3_endpoint=endpoint,
                bucket=bucket,
                log_dir=log_dir,
                media_dir=media_dir,
                workers=[worker],
                worker_names=[worker_name],
                metrics_port=metrics_port,
                wait_timeout_s=wait_timeout_s,
            )
            yield stack
            errors = stack.api_server_errors()
            assert not errors, "the API answered 5xx:\n" + "\n".join(errors[:10])
        finally:
            if stack is not None:
                stack.api.stop()
            for process in stack.workers if stack is not None else [worker]:
                process.stop()
            clear_broker_keys(prefix)


@contextlib.contextmanager
def private_stack(
    root: Path,
    *,
    workers: int = 1,
    extra: Mapping[str, str] | None = None,
    redis_password: str | None = None,
    postgres_password: str | None = None,
    ffmpeg_faults: bool = False,
    queues: str = "probe,analyze,maintenance",
) -> Iterator[PrivateStack]:
    """Everything up on private services (worker 0 runs beat); torn down afterwards."""
    from core.migrate import upgrade

    log_dir = root / "logs"
    model = make_test_checkpoint(root / "model.safetensors")
    prefix = f"dfs-private-{secrets.token_hex(3)}:"
    bucket = PRIVATE_BUCKET
    with (
        PostgresCluster(password=postgres_password) as postgres,
        RedisServer(root / "redis", password=redis_password) as redis_server,
        moto_s3_server(log_dir) as moto_endpoint,
    ):
        create_bucket(moto_endpoint, bucket)
        create_bucket(moto_endpoint, SOURCE_BUCKET)
        port = int(moto_endpoint.rsplit(":", 1)[1])
        with TcpProxy("127.0.0.1", port) as proxy:
            database_url = postgres.create_database("deepfakestream")
            upgrade(database_url)
            env = platform_env(
                database_url=database_url,
                storage_url=f"s3://{bucket}/private",
                broker_key_prefix=prefix,
                work_dir=root / "work",
                s3_endpoint=proxy.endpoint,
                model_path=model,
                extra={**FAULT_SETTINGS, "BROKER_URL": redis_server.url, **(extra or {})},
            )
            worker_env: dict[str, str] = {}
            if ffmpeg_faults:
                worker_env["PATH"] = f"{ffmpeg_fault_dir(root)}{os.pathsep}{env.get('PATH', '')}"
            stack: PrivateStack | None = None
            try:
                api, base_url = start_api(env, log_dir=log_dir)
                media_dir = root / "media"
                media_dir.mkdir(parents=True, exist_ok=True)
                stack = PrivateStack(
                    base_url=base_url,
                    env=env,
                    # The tests' own storage calls go to moto directly, not through the fault proxy.
                    settings=settings_from_env(env, s3_endpoint_url=moto_endpoint),
                    api=api,
                    s3_endpoint=moto_endpoint,
                    bucket=bucket,
                    log_dir=log_dir,
                    media_dir=media_dir,
                    wait_timeout_s=240.0,
                    root=root,
                    redis=redis_server,
                    postgres=postgres,
                    storage_proxy=proxy,
                )
                for index in range(workers):
                    stack.start_worker(f"private{index + 1}", beat=index == 0, env=worker_env, queues=queues)
                yield stack
            finally:
                if stack is not None:
                    stack.api.stop()
                    for worker in stack.workers:
                        worker.stop()
