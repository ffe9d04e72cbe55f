"""Hostile requests and receivers, as an outside tester sends them: raw sockets against a running
API (a huge body without a key, an endless chunked body, a body trickled or left short), a webhook
receiver that trickles its headers, and a direct upload swapped by a PUT that ends after its job
was created. ``try_hostile_requests`` runs them all on a stack and judges each answer."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.utils.platform import make_small_video
from tests.utils.waiting import wait_for

__all__ = [
    "HOSTILE_REQUEST_KINDS",
    "RssSampler",
    "raw_request_head",
    "read_answer",
    "send_chunks_until_answered",
    "trickling_receiver",
    "try_hostile_requests",
]

HOSTILE_REQUEST_KINDS = (
    "unauthenticated_400mb_body",
    "chunked_body_past_cap",
    "trickled_body",
    "trickling_webhook_receiver",
    "swapped_upload",
)
HUGE = 400 * 1024 * 1024


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def raw_request_head(method: str, path: str, base_url: str, headers: dict[str, str]) -> bytes:
    host, port = _address(base_url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket, *, timeout_s: float) -> tuple[int, dict[str, Any], bytes]:
    """(status, JSON body, raw) of the answer; the server closes the connection after it."""
    sock.settimeout(timeout_s)
    raw = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    return status, parsed, raw


def send_chunks_until_answered(sock: socket.socket, chunk: bytes, *, limit_bytes: int) -> int:
    """Sends ``chunk`` again and again (chunked encoding) until the server answers, closes, or
    ``limit_bytes`` went out. Returns the bytes sent."""
    sent = 0
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    while sent < limit_bytes:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(framed)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(chunk)
    return sent


class RssSampler:
    """The peak resident memory of one process, sampled every 20 ms while in use."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before_mb = self.peak_mb = self._rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _rss_mb(self) -> float:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_mb = max(self.peak_mb, self._rss_mb())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)


@contextlib.contextmanager
def trickling_receiver(*, every_s: float, lines: int) -> Iterator[str]:
    """A webhook receiver that answers ``200`` and then one more header line every ``every_s``
    seconds, ``lines`` of them, before it ends the headers."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            for _ in range(lines):
                if stop.wait(every_s):
                    return
                conn.sendall(b"X-Slow: a\r\n")
            conn.sendall(b"Content-Length: 2\r\n\r\nok")

    def serve() -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                conn, _ = listener.accept()
                threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/slow"
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def _error_code(body: dict[str, Any]) -> str | None:
    error = body.get("error")
    return error.get("code") if isinstance(error, dict) else None


def _unauthenticated_huge_body(base_url: str) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Content-Length": str(HUGE)}
    started = time.monotonic()
    with socket.create_connection(_address(base_url), timeout=30) as sock:
        sock.sendall(raw_request_head("POST", "/v1/uploads", base_url, headers) + b"{" * 65536)
        status, body, _ = read_answer(sock, timeout_s=30)
    code = _error_code(body)
    return {
        "answer": status,
        "code": code,
        "typed": status == 401 and bool(code),
        "answer_s": _since(started),
    }


def _chunked_past_cap(base_url: str, key: str) -> dict[str, Any]:
    headers = {"Authorization": key, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    with socket.create_connection(_address(base_url), timeout=30) as sock:
        sock.sendall(raw_request_head("POST", "/v1/webhooks", base_url, headers))
        sent = send_chunks_until_answered(sock, b" " * 65536, limit_bytes=HUGE)
        status, body, _ = read_answer(sock, timeout_s=30)
    code = _error_code(body)
    return {"answer": status, "code": code, "typed": status == 413 and bool(code), "bytes_sent": sent}


def _trickled_body(base_url: str, key: str) -> dict[str, Any]:
    headers = {"Authorization": key, "Content-Type": "application/json", "Content-Length": "100000"}
    answered = threading.Event()
    started = time.monotonic()
    with socket.create_connection(_address(base_url), timeout=120) as sock:
        sock.sendall(raw_request_head("POST", "/v1/webhooks", base_url, headers))

        def trickle() -> None:
            while not answered.wait(0.5):
                with contextlib.suppress(OSError):
                    sock.sendall(b" ")

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        status, body, _ = read_answer(sock, timeout_s=120)
        answered.set()
        thread.join(5)
    code = _error_code(body)
    return {
        "answer": status,
        "code": code,
        "typed": status == 408 and bool(code),
        "answer_s": _since(started),
    }


def _since(started: float) -> float:
    return round(time.monotonic() - started, 2)


def try_hostile_requests(stack: Any, headers: dict[str, str], media_dir: Path) -> list[dict[str, Any]]:
    """Every kind of ``HOSTILE_REQUEST_KINDS`` against ``stack`` (a ``tests.utils.stack.Stack``
    whose worker takes the webhooks queue, with WEBHOOK_ALLOW_PRIVATE): one outcome each, with
    the API's resident memory before and at its peak while it was tried."""
    key = headers["Authorization"]
    base_url = stack.base_url
    outcomes: list[dict[str, Any]] = []

    def tried(kind: str, attempt: Any) -> None:
        with RssSampler(stack.api.pid) as rss:
            outcome = attempt()
        outcomes.append(
            {
                "kind": kind,
                **outcome,
                "api_rss_mb": {"before": round(rss.before_mb, 1), "peak": round(rss.peak_mb, 1)},
            }
        )

    tried("unauthenticated_400mb_body", lambda: _unauthenticated_huge_body(base_url))
    tried("chunked_body_past_cap", lambda: _chunked_past_cap(base_url, key))
    tried("trickled_body", lambda: _trickled_body(base_url, key))
    tried("trickling_webhook_receiver", lambda: _trickling_webhook(stack, headers, media_dir))
    tried("swapped_upload", lambda: _swapped_upload(stack, headers, media_dir))
    return outcomes


def _trickling_webhook(stack: Any, headers: dict[str, str], media_dir: Path) -> dict[str, Any]:
    timeout_s = stack.settings.webhook_timeout_s
    clip = make_small_video(media_dir / "webhook.mp4")
    with trickling_receiver(every_s=0.5, lines=int(4 * timeout_s / 0.5)) as url:
        submitted = stack.post_video(headers, clip, callback_url=url)
        job_id = submitted.json()["id"]
        stack.wait_job(headers, job_id, timeout_s=300)
        with stack.client(headers) as client:

            def first_attempt() -> dict[str, Any] | None:
                items = client.get(f"/v1/jobs/{job_id}/deliveries").json()["items"]
                attempts = items[0]["attempt_log"] if items else []
                return attempts[0] if attempts else None

            attempt = wait_for(first_attempt, timeout_s=120, what="the first webhook attempt")
    code = attempt.get("error_code")
    duration_ms = attempt.get("duration_ms") or 0
    typed = code == "timeout" and duration_ms <= (timeout_s + 1.0) * 1000
    return {"answer": attempt.get("status_code"), "code": code, "typed": typed, "duration_ms": duration_ms}


def _swapped_upload(stack: Any, headers: dict[str, str], media_dir: Path) -> dict[str, Any]:
    first = make_small_video(media_dir / "first.mp4", seconds=1.0).read_bytes()
    second = make_small_video(media_dir / "second.mp4", seconds=2.0, size="96x64").read_bytes()
    base_url = stack.base_url
    with stack.client(headers) as client:
        reserved = client.post("/v1/uploads", json={"size_bytes": max(len(first), len(second))})
        upload_id = reserved.json()["upload_id"]
        client.put(f"/v1/uploads/{upload_id}", content=first)
        with socket.create_connection(_address(base_url), timeout=60) as slow:
            put_headers = {**headers, "Content-Type": "video/mp4", "Content-Length": str(len(second))}
            slow.sendall(
                raw_request_head("PUT", f"/v1/uploads/{upload_id}", base_url, put_headers) + second[:1000]
            )
            time.sleep(0.3)
            job = client.post("/v1/jobs", json={"upload_id": upload_id}).json()
            slow.sendall(second[1000:])
            status, body, _ = read_answer(slow, timeout_s=60)
    finished = stack.wait_job(headers, job["id"], timeout_s=300)
    code = _error_code(body)
    kept = finished["video"]["size_bytes"] == len(first) and finished["status"] == "succeeded"
    return {
        "answer": status,
        "code": code,
        "typed": status == 409 and bool(code) and kept,
        "job": finished["status"],
    }
