"""The pieces stacks are built of: service processes, a fresh database, moto S3, the environment.

A fresh PostgreSQL database per run, a moto S3 server, the API under uvicorn and Celery worker
subprocesses, all isolated from other runs on the same machine. Nothing here skips: a missing
PostgreSQL, Redis or binary fails the test loudly.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
from sqlalchemy import create_engine, pool, text

from core.config import Settings, load_settings
from tests.utils.waiting import wait_for

__all__ = [
    "ADMIN_DATABASE_URL",
    "REDIS_URL",
    "REPO_ROOT",
    "ServiceProcess",
    "clear_broker_keys",
    "create_bucket",
    "free_port",
    "fresh_database",
    "isolated_settings",
    "make_small_video",
    "make_test_checkpoint",
    "moto_s3_server",
    "platform_env",
    "server_error_lines",
    "settings_from_env",
    "start_api",
    "start_worker",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_DATABASE_URL = os.environ.get(
    "TEST_ADMIN_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
S3_TEST_CREDENTIALS = {"S3_ACCESS_KEY_ID": "testing", "S3_SECRET_ACCESS_KEY": "testing"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fresh_database(*, migrate: bool = True) -> Iterator[str]:
    """A new database ``dfs_test_<random>`` at head revision; dropped afterwards."""
    name = f"dfs_test_{secrets.token_hex(6)}"
    admin = create_engine(ADMIN_DATABASE_URL, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN_DATABASE_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        if migrate:
            from core.migrate import upgrade

            upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class ServiceProcess:
    """A subprocess in its own process group, its output in a log file, stopped for sure."""

    def __init__(self, name: str, argv: list[str], *, env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signals every process of the group (a Celery worker and its pool children)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def stop(self, *, timeout_s: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            self._reap_group()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill_group(signal.SIGKILL)
        self._reap_group()

    def _reap_group(self) -> None:
        # Pool children outlive a killed parent; make sure none is left running.
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


@contextlib.contextmanager
def moto_s3_server(log_dir: Path) -> Iterator[str]:
    """A standalone moto server (S3-compatible) on a free port; yields its endpoint URL."""
    port = free_port()
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    server = ServiceProcess(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        log_path=log_dir / "moto.log",
    ).start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: server.alive() and httpx.get(f"{endpoint}/moto-api/", timeout=1).status_code < 500,
            timeout_s=60,
            what=f"moto S3 server on {endpoint}\n{server.tail()}",
        )
        yield endpoint
    finally:
        server.stop()


def create_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=bucket)


def clear_broker_keys(prefix: str) -> None:
    """Removes every Redis key a test run's broker made (they all start with ``prefix``)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextlib.contextmanager
def isolated_settings(
    name: str, folders: Callable[[str], Path], **changes: object
) -> Iterator[Settings]:
    """Test settings of their own: a fresh migrated database, a broker key prefix (its keys are
    cleared afterwards), and storage and work folders made by ``folders`` (e.g.
    ``tmp_path_factory.mktemp``). ``changes`` set any other setting."""
    prefix = f"dfs-test-{name}-{secrets.token_hex(4)}:"
    with fresh_database() as url:
        yield load_settings(
            environment="test",
            database_url=url,
            broker_url=REDIS_URL,
            broker_key_prefix=prefix,
            storage_url=folders("storage").as_uri(),
            work_dir=folders("work"),
            **changes,
        )
    clear_broker_keys(prefix)


def make_test_checkpoint(path: Path, *, input_size: int = 128) -> Path:
    """A randomly initialised classifier checkpoint (metadata says trained: false)."""
    from pipeline.model import DeepfakeClassifier, ModelConfig, save_checkpoint

    if path.exists():
        return path
    config = ModelConfig(input_size=input_size, name="test-random", version="0.0.0-test")
    return save_checkpoint(DeepfakeClassifier(config), path, config)


def make_small_video(path: Path, *, seconds: float = 1.0, size: str = "64x48", fps: int = 5) -> Path:
    """A tiny H.264 MP4 of ffmpeg's test pattern (no faces): for tests of the API, not the model."""
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size={size}:rate={fps}",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
    )
    return path


def platform_env(
    *,
    database_url: str,
    storage_url: str,
    broker_key_prefix: str,
    work_dir: Path,
    s3_endpoint: str | None = None,
    model_path: Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment the API and workers of one test run share."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "S3_"))}
    env.update(
        {
            "ENVIRONMENT": "test",
            "DATABASE_URL": database_url,
            "BROKER_URL": REDIS_URL,
            "BROKER_KEY_PREFIX": broker_key_prefix,
            "STORAGE_URL": storage_url,
            "WORK_DIR": str(work_dir),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "DEVICE": "cpu",
            # One torch thread per process: the tests share two cores with everything else.
            "OMP_NUM_THREADS": "1",
        }
    )
    if s3_endpoint is not None:
        env.update({"S3_ENDPOINT_URL": s3_endpoint, **S3_TEST_CREDENTIALS})
    if model_path is not None:
        env["MODEL_PATH"] = str(model_path)
    env.update(extra or {})
    return env


def settings_from_env(env: Mapping[str, str], *, s3_endpoint_url: str | None = None) -> Settings:
    """The settings of the API and workers started with ``env`` (``platform_env``), for the tests'
    own database sessions and storage calls; ``s3_endpoint_url`` overrides the endpoint."""
    return load_settings(
        database_url=env["DATABASE_URL"],
        broker_url=env["BROKER_URL"],
        broker_key_prefix=env["BROKER_KEY_PREFIX"],
        storage_url=env["STORAGE_URL"],
        s3_endpoint_url=s3_endpoint_url or env["S3_ENDPOINT_URL"],
        s3_access_key_id=S3_TEST_CREDENTIALS["S3_ACCESS_KEY_ID"],
        s3_secret_access_key=S3_TEST_CREDENTIALS["S3_SECRET_ACCESS_KEY"],
    )


def server_error_lines(log_text: str, *, allow_unavailable: bool = False) -> list[str]:
    """API log lines of 5xx answers (503s too unless ``allow_unavailable``) and crashed requests."""
    lines = []
    for line in log_text.splitlines():
        unavailable = allow_unavailable and '"status": 503' in line
        if "api.request.crashed" in line or ('"status": 5' in line and not unavailable):
            lines.append(line)
    return lines


def _cli() -> list[str]:
    return [sys.executable, "-m", "core.cli"]


def start_api(
    env: Mapping[str, str], *, log_dir: Path, timeout_s: float = 60.0
) -> tuple[ServiceProcess, str]:
    port = free_port()
    api = ServiceProcess(
        "api",
        [*_cli(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        log_path=log_dir / "api.log",
    ).start()
    base_url = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: api.alive() and httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200,
        timeout_s=timeout_s,
        what=f"the API on {base_url}\n{api.tail()}",
    )
    return api, base_url


def start_worker(
    env: Mapping[str, str],
    *,
    log_dir: Path,
    name: str = "worker1",
    queues: str = "probe,analyze,maintenance",
    beat: bool = True,
    concurrency: int = 1,
    timeout_s: float = 180.0,
) -> ServiceProcess:
    """A real ``deepfakestream worker``; returns once it and its pool processes are ready."""
    argv = [
        *_cli(),
        "worker",
        "--queues",
        queues,
        "--concurrency",
        str(concurrency),
        "--hostname",
        f"{name}@%h",
    ]
    if beat:
        argv.append("--beat")
    worker = ServiceProcess(name, argv, env=env, log_path=log_dir / f"{name}.log")
    offset = len(worker.log_text())
    worker.start()

    def ready() -> bool:
        if not worker.alive():
            raise AssertionError(f"worker {name} exited:\n{worker.tail()}")
        text_after = worker.log_text()[offset:]
        return "worker.ready" in text_after and text_after.count("worker.process.ready") >= concurrency

    wait_for(ready, timeout_s=timeout_s, what=f"worker {name} to be ready", interval_s=0.25)
    return worker
