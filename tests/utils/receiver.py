"""A real HTTP(S) server on the loopback interface, in a thread: receives webhooks (recording every
request and answering from a per-path script) and serves files (https sources for batches)."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["Answer", "Received", "Receiver", "running_receiver"]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived


class Receiver:
    """Requests by path, in arrival order. ``script(path, answers)``: the answers to give, in
    order (the last one repeats); ``serve_file(path, data)`` answers GETs with the bytes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._scripts: dict[str, list[Answer]] = {}
        self._files: dict[str, bytes] = {}
        self.base_url = ""
        self.connections = 0

    def script(self, path: str, answers: list[Answer]) -> str:
        with self._lock:
            self._scripts[path] = list(answers)
        return self.base_url + path

    def serve_file(self, path: str, data: bytes) -> str:
        with self._lock:
            self._files[path] = data
        return self.base_url + path

    def requests(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    def wait_for(self, path: str, count: int, *, timeout_s: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.requests(path)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{path} received {len(self.requests(path))} requests, expected {count}")

    def _answer(self, request: Received) -> Answer:
        with self._lock:
            self._requests.append(request)
            if request.method == "GET" and request.path in self._files:
                data = self._files[request.path]
                return Answer(200, {"Content-Type": "video/mp4"}, data)
            script = self._scripts.get(request.path)
            if not script:
                return Answer(404, {}, b"no such path")
            return script.pop(0) if len(script) > 1 else script[0]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Received(
                method=self.command,
                path=self.path,
                headers={key.lower(): value for key, value in self.headers.items()},
                body=body,
                at=time.monotonic(),
            )
            answer = receiver._answer(request)
            self.send_response(answer.status)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = _handle  # noqa: N815 - http.server's naming
        do_POST = _handle  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: Receiver, tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _handler(receiver))
        self._receiver = receiver
        self._tls = tls

    def get_request(self):  # type: ignore[no-untyped-def]
        sock, address = super().get_request()
        self._receiver.connections += 1
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_side=True)
        return sock, address


@contextlib.contextmanager
def running_receiver(
    *, cert: Path | None = None, key: Path | None = None, host: str = "127.0.0.1"
) -> Iterator[Receiver]:
    """A receiver on a free loopback port; HTTPS when ``cert`` and ``key`` are given. ``host`` is
    the name put in its URLs (``localhost`` for a certificate issued to that name)."""
    receiver = Receiver()
    tls = None
    if cert is not None and key is not None:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(str(cert), str(key))
    server = _Server(receiver, tls)
    scheme = "https" if tls else "http"
    receiver.base_url = f"{scheme}://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
