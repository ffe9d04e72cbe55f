"""Private services that fault tests may stop, kill and restart, and the platform on top of them.

A Redis server, a PostgreSQL cluster and a TCP proxy that cuts the path to a server (storage)
without losing its state; ``private_stack`` runs the API, workers and moto S3 on them. Each
listens on its own free port on 127.0.0.1, so the machine's shared PostgreSQL and Redis are never
touched.

Nothing here skips: a missing binary fails the test loudly.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.config import Settings
from core.db import get_session_factory
from tests.utils.platform import (
    ServiceProcess,
    create_bucket,
    free_port,
    make_test_checkpoint,
    moto_s3_server,
    platform_env,
    server_error_lines,
    settings_from_env,
    start_api,
    start_worker,
    wait_for,
)

__all__ = [
    "FAULT_SETTINGS",
    "SOURCE_BUCKET",
    "STACK_BUCKET",
    "TERMINAL",
    "PostgresCluster",
    "PrivateStack",
    "RedisServer",
    "TcpProxy",
    "postgres_bin",
    "private_stack",
]

_POSTGRES_BIN_DIRS = tuple(f"/usr/lib/postgresql/{version}/bin" for version in (17, 16, 15))


def _require(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise RuntimeError(f"{binary} is not installed; the fault tests need it")
    return found


def postgres_bin(name: str) -> str:
    """A PostgreSQL server binary (initdb, pg_ctl), which Debian keeps out of PATH."""
    for directory in (os.environ.get("PG_BIN_DIR", ""), *_POSTGRES_BIN_DIRS):
        candidate = Path(directory) / name
        if directory and candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} was not found (set PG_BIN_DIR); the fault tests need it")
    return found


class RedisServer:
    """``redis-server`` on a port of its own, without persistence: a restart loses every key, as a
    broker restarted without AOF/RDB does. ``password`` turns on ``requirepass``."""

    def __init__(self, root: Path, *, password: str | None = None, port: int | None = None) -> None:
        self.root = root
        self.password = password
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [
            _require("redis-server"),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.root),
            "--logfile", str(self.root / "redis.log"),
        ]  # fmt: skip
        if self.password:
            argv += ["--requirepass", self.password]
        self.process = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL)
        wait_for(self.ping, timeout_s=20, what=f"private redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def stop(self, *, sig: int = signal.SIGKILL) -> None:
        """Stops the server at once (SIGKILL by default: no goodbye to its clients)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            self.process.wait(timeout=20)
        self.process = None

    def restart(self, *, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()
        self.restarts += 1

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class PostgresCluster:
    """A throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``) in a temporary directory, on a port of
    its own. Run as the ``postgres`` user when the tests run as root (the server refuses root).
    ``password`` makes the cluster ask for it (scram-sha-256) on TCP connections."""

    def __init__(self, *, password: str | None = None, port: int | None = None) -> None:
        self.password = password
        self.port = port or free_port()
        # Outside pytest's private tmp (mode 0700, owned by root): the postgres user must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="dfs-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.restarts = 0
        self._as_postgres = os.geteuid() == 0

    def _run(self, argv: list[str], *, timeout_s: float = 120.0) -> subprocess.CompletedProcess[bytes]:
        if self._as_postgres:
            argv = [_require("runuser"), "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({result.returncode}): "
                f"{(result.stdout + result.stderr).decode(errors='replace')[-1500:]}\n{self.log_tail()}"
            )
        return result

    def url(self, database: str = "postgres") -> str:
        auth = f"postgres:{quote(self.password, safe='')}" if self.password else "postgres"
        return f"postgresql+psycopg2://{auth}@127.0.0.1:{self.port}/{database}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def init(self) -> PostgresCluster:
        if self._as_postgres:
            shutil.chown(self.root, user="postgres", group="postgres")
        argv = [postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                "--locale=C", "--auth-local=trust"]  # fmt: skip
        if self.password:
            password_file = self.root / "pwfile"
            password_file.write_text(self.password + "\n")
            if self._as_postgres:
                shutil.chown(password_file, user="postgres", group="postgres")
            argv += ["--auth-host=scram-sha-256", f"--pwfile={password_file}"]
        else:
            argv += ["--auth-host=trust"]
        self._run(argv)
        (self.root / "pwfile").unlink(missing_ok=True)
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            # A throwaway cluster: durability is not what is being tested.
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200"
        )
        self._run([postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-o", options,
                   "-w", "-t", "60", "start"])  # fmt: skip

    def stop(self, *, mode: str = "fast") -> None:
        """``fast`` disconnects every client and shuts down; ``immediate`` is a crash."""
        self._run([postgres_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])

    def running(self) -> bool:
        argv = [postgres_bin("pg_ctl"), "-D", str(self.data), "status"]
        if self._as_postgres:
            argv = [_require("runuser"), "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0

    def restart(self, *, down_s: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode=mode)
        time.sleep(down_s)
        self.start()
        self.restarts += 1

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, pool, text

        admin = create_engine(self.url(), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop(mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        try:
            self.init()
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target. ``stop()`` closes the listener and every live
    connection, so clients see the server vanish (connection refused, reset) while the server keeps
    its state; ``start()`` opens the same port again."""

    def __init__(self, target_host: str, target_port: int, *, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.outages = 0
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 20
        while True:
            try:
                listener.bind(("127.0.0.1", self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    listener.close()
                    raise
                time.sleep(0.2)
        listener.listen(128)
        self._listener = listener
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._accepting is not None:
            self._accepting.join(timeout=5)
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The server is unreachable inside the block."""
        self.stop()
        self.outages += 1
        try:
            yield
        finally:
            self.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: an outage began
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._connections.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(sink)
            source.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --- a whole platform on private services ------------------------------------------------------

TERMINAL = ("succeeded", "failed", "canceled")
STACK_BUCKET = "dfs-private"
SOURCE_BUCKET = "client-videos"

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


@dataclass
class PrivateStack:
    """The API, workers, a private Redis and PostgreSQL, and moto S3 reached through a cuttable proxy."""

    root: Path
    env: dict[str, str]
    settings: Settings
    base_url: str
    api: ServiceProcess
    workers: list[ServiceProcess]
    redis: RedisServer
    postgres: PostgresCluster
    storage_proxy: TcpProxy
    s3_endpoint: str  # moto itself, bypassing the proxy (for the tests' own reads)
    log_dir: Path
    worker_names: list[str] = field(default_factory=list)

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
        listing = self.s3().list_objects_v2(Bucket=STACK_BUCKET, Prefix=self.settings.storage_prefix + prefix)
        return {item["Key"] for item in listing.get("Contents", [])}

    # -- API
    def new_key(self, *, admin: bool = False, tenant: str | None = None) -> dict[str, str]:
        from core.keys import create_api_key

        with self.session() as session:
            created = create_api_key(
                session, tenant_name=tenant or f"tenant-{secrets.token_hex(4)}", admin=admin
            )
        return {"Authorization": f"Bearer {created.key}"}

    def tenant_id(self, headers: Mapping[str, str]) -> uuid.UUID:
        from core.keys import authenticate

        with self.session() as session:
            key = authenticate(session, key=headers["Authorization"].split(" ", 1)[1])
            assert key is not None
            return key.tenant_id

    def client(self, headers: Mapping[str, str] | None = None, *, timeout_s: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=dict(headers or {}), timeout=timeout_s)

    def submit(
        self,
        headers: Mapping[str, str],
        path: Path,
        *,
        expect: int | None = 202,
        filename: str | None = None,
        **fields: str,
    ) -> httpx.Response:
        with self.client(headers) as client:
            response = client.post(
                "/v1/jobs",
                files={"file": (filename or path.name, path.read_bytes(), "video/mp4")},
                data=fields,
            )
        if expect is not None:
            assert response.status_code == expect, response.text
        return response

    def job(self, headers: Mapping[str, str], job_id: str) -> dict[str, Any]:
        with self.client(headers) as client:
            response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_job(
        self, headers: Mapping[str, str], job_id: str, *, timeout_s: float = 240.0
    ) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            job = self.job(headers, job_id)
            return job if job["status"] in TERMINAL else None

        try:
            return dict(wait_for(done, timeout_s=timeout_s, what=f"job {job_id} to end", interval_s=0.25))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log ---\n{self.workers[0].tail(40)}") from None

    # -- processes
    def start_worker(
        self, name: str, *, beat: bool = False, env: Mapping[str, str] | None = None
    ) -> ServiceProcess:
        worker = start_worker({**self.env, **(env or {})}, log_dir=self.log_dir, name=name, beat=beat)
        self.workers.append(worker)
        self.worker_names.append(name)
        return worker

    def restart_worker(self, index: int = 0) -> ServiceProcess:
        """Starts worker ``index`` again under its name (after a test stopped or killed it)."""
        old = self.workers[index]
        old.stop()
        worker = start_worker(
            old.env, log_dir=self.log_dir, name=self.worker_names[index], beat="--beat" in old.argv
        )
        self.workers[index] = worker
        return worker

    def worker_logs(self) -> str:
        return "\n".join(worker.log_text() for worker in self.workers)

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

    def api_server_errors(self, *, allow_unavailable: bool = False) -> list[str]:
        """API log lines of 5xx answers (503s only when not allowed) and crashed requests."""
        return server_error_lines(self.api.log_text(), allow_unavailable=allow_unavailable)


def _ffmpeg_fault_dir(root: Path) -> Path:
    """A directory with an ``ffmpeg`` that is the real one, except on inputs whose file name
    carries a fault marker: ``crash-decoder`` makes the decoder die of SIGSEGV, and
    ``crash-worker-process`` kills the process that started it (the worker's pool process), as a
    decoder crashing inside that process would."""
    directory = root / "fault-bin"
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "ffmpeg"
    script.write_text(
        "#!/usr/bin/env bash\n"
        "for arg in \"$@\"; do\n"
        "  case \"$arg\" in\n"
        "    *crash-worker-process*) kill -KILL \"$PPID\"; exit 137 ;;\n"
        "    *crash-decoder*) kill -SEGV $$ ;;\n"
        "  esac\n"
        "done\n"
        f"exec {_require('ffmpeg')} \"$@\"\n"
    )
    script.chmod(0o755)
    return directory


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
    with (
        PostgresCluster(password=postgres_password) as postgres,
        RedisServer(root / "redis", password=redis_password) as redis_server,
        moto_s3_server(log_dir) as moto_endpoint,
    ):
        create_bucket(moto_endpoint, STACK_BUCKET)
        create_bucket(moto_endpoint, SOURCE_BUCKET)
        port = int(moto_endpoint.rsplit(":", 1)[1])
        with TcpProxy("127.0.0.1", port) as proxy:
            database_url = postgres.create_database("deepfakestream")
            upgrade(database_url)
            env = platform_env(
                database_url=database_url,
                storage_url=f"s3://{STACK_BUCKET}/private",
                broker_key_prefix=prefix,
                work_dir=root / "work",
                s3_endpoint=proxy.endpoint,
                model_path=model,
                extra={**FAULT_SETTINGS, "BROKER_URL": redis_server.url, **(extra or {})},
            )
            # The tests' own storage calls go to moto directly, not through the fault proxy.
            settings = settings_from_env(env, s3_endpoint_url=moto_endpoint)
            worker_env: dict[str, str] = {}
            if ffmpeg_faults:
                worker_env["PATH"] = f"{_ffmpeg_fault_dir(root)}{os.pathsep}{env.get('PATH', '')}"
            api: ServiceProcess | None = None
            stack: PrivateStack | None = None
            try:
                api, base_url = start_api(env, log_dir=log_dir)
                stack = PrivateStack(
                    root=root,
                    env=env,
                    settings=settings,
                    base_url=base_url,
                    api=api,
                    workers=[],
                    redis=redis_server,
                    postgres=postgres,
                    storage_proxy=proxy,
                    s3_endpoint=moto_endpoint,
                    log_dir=log_dir,
                )
                for index in range(workers):
                    worker = start_worker(
                        {**env, **worker_env},
                        log_dir=log_dir,
                        name=f"private{index + 1}",
                        beat=index == 0,
                        queues=queues,
                    )
                    stack.workers.append(worker)
                    stack.worker_names.append(f"private{index + 1}")
                yield stack
            finally:
                if api is not None:
                    api.stop()
                for worker in stack.workers if stack is not None else []:
                    worker.stop()
