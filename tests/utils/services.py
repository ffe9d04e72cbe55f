"""Private services that fault tests may stop, kill and restart.

A Redis server, a PostgreSQL cluster, a TCP proxy that cuts the path to a server (storage) without
losing its state, and an ffmpeg that crashes on request; ``tests.utils.stack.private_stack`` runs
the platform on them. Each listens on its own free port on 127.0.0.1, so the machine's shared
PostgreSQL and Redis are never touched.

Nothing here skips: a missing binary fails the test loudly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import text

from tests.utils.platform import (
    free_port,
)
from tests.utils.waiting import wait_for

__all__ = ["PostgresCluster", "RedisServer", "TcpProxy", "ffmpeg_fault_dir", "postgres_bin"]

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
        from sqlalchemy import create_engine, pool

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


def ffmpeg_fault_dir(root: Path) -> Path:
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
