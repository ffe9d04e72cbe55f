"""The pinned client: refused addresses are refused before any connection, the connection goes
to the checked address, no redirects are followed blindly, size caps and deadlines hold. Only
loopback traffic is ever sent."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.egress.client import download, post
from core.egress.guard import AddressNotAllowedError, EgressError, check_url_statically
from tests.utils.receiver import Answer, Receiver, running_receiver
from tests.utils.tls import TlsFiles, make_certificates


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def test_post_to_refused_address_never_connects(receiver: Receiver) -> None:
    url = receiver.script("/hook", [Answer(200)])

    with pytest.raises(AddressNotAllowedError):
        post(url, body=b"{}", headers={}, allow_private=False, timeout_s=5, connect_timeout_s=2)
    with pytest.raises(AddressNotAllowedError):
        post(
            url.replace("127.0.0.1", "localhost"),
            body=b"{}",
            headers={},
            allow_private=False,
            timeout_s=5,
            connect_timeout_s=2,
        )

    assert receiver.connections == 0


# What an outside tester got accepted and connected to with WEBHOOK_ALLOW_PRIVATE=true.
METADATA_URL_HOSTS = [
    "[fd20:ce::254]",
    "[fe80::a9fe:a9fe]",
    "169.254.0.23",
    "[::a9fe:a9fe]",
    "[::ffff:0:a9fe:a9fe]",
]


@pytest.mark.parametrize("host", METADATA_URL_HOSTS)
def test_metadata_urls_are_refused_when_accepted_with_private_allowed(host: str) -> None:
    with pytest.raises(AddressNotAllowedError, match="metadata") as caught:
        check_url_statically(f"https://{host}/latest/", allow_private=True)

    assert not caught.value.private  # no hint at a switch that would not help


@pytest.mark.parametrize("host", METADATA_URL_HOSTS)
def test_post_and_download_refuse_metadata_with_private_allowed(host: str, tmp_path: Path) -> None:
    # At connect time the worker's calls check again, before any socket is opened.
    with pytest.raises(AddressNotAllowedError, match="metadata"):
        post(
            f"http://{host}/hook",
            body=b"{}",
            headers={},
            allow_private=True,
            timeout_s=5,
            connect_timeout_s=2,
        )
    with pytest.raises(AddressNotAllowedError, match="metadata"):
        _download(f"https://{host}/a.mp4", tmp_path / "a.mp4", None)


def test_post_pins_the_checked_address_and_keeps_the_host_name(receiver: Receiver) -> None:
    url = receiver.script("/hook?x=1", [Answer(202, {"X-Reply": "yes"}, b"accepted")])
    by_name = url.replace("127.0.0.1", "localhost")

    response = post(
        by_name,
        body=b'{"a":1}',
        headers={"content-type": "application/json"},
        allow_private=True,
        timeout_s=5,
        connect_timeout_s=2,
    )

    (request,) = receiver.requests("/hook?x=1")
    assert response.status_code == 202 and response.remote_address == "127.0.0.1"
    assert response.headers["x-reply"] == "yes" and response.body_head == b"accepted"
    assert request.headers["host"] == by_name.split("/")[2]
    assert request.body == b'{"a":1}'


def test_post_does_not_follow_redirects(receiver: Receiver) -> None:
    receiver.script("/target", [Answer(200)])
    url = receiver.script("/hook", [Answer(307, {"Location": receiver.base_url + "/target"})])

    response = post(url, body=b"{}", headers={}, allow_private=True, timeout_s=5, connect_timeout_s=2)

    assert response.status_code == 307
    assert receiver.requests("/target") == []


def test_post_to_a_closed_port_is_a_retryable_connect_failure() -> None:
    with running_receiver() as closed:
        url = closed.base_url + "/hook"
    with pytest.raises(EgressError) as caught:
        post(url, body=b"{}", headers={}, allow_private=True, timeout_s=5, connect_timeout_s=2)

    assert caught.value.code == "connect_failed" and caught.value.retryable


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture()
def https_server(certificates: TlsFiles) -> Iterator[Receiver]:
    with running_receiver(cert=certificates.cert, key=certificates.key, host="localhost") as running:
        yield running


def _download(url: str, destination: Path, certificates: TlsFiles | None, **overrides: object) -> object:
    options: dict[str, object] = {
        "allow_private": True,
        "max_bytes": 1_000_000,
        "timeout_s": 10.0,
        "connect_timeout_s": 2.0,
        "max_redirects": 2,
        "ca_bundle": certificates.ca if certificates else None,
    }
    options.update(overrides)
    return download(url, destination, **options)  # type: ignore[arg-type]


def test_download_over_https_with_a_private_ca(
    https_server: Receiver, certificates: TlsFiles, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 1000
    url = https_server.serve_file("/videos/a.mp4", data)

    fetched = _download(url, tmp_path / "a.mp4", certificates)

    assert (tmp_path / "a.mp4").read_bytes() == data
    assert fetched.size == len(data)  # type: ignore[attr-defined]
    assert not (tmp_path / "a.mp4.part").exists()


def test_download_refuses_an_untrusted_certificate(https_server: Receiver, tmp_path: Path) -> None:
    url = https_server.serve_file("/a.mp4", b"x" * 100)

    with pytest.raises(EgressError) as caught:
        _download(url, tmp_path / "a.mp4", None)

    assert caught.value.code == "tls_failed"
    assert not (tmp_path / "a.mp4").exists()


def test_download_stops_at_the_size_cap(
    https_server: Receiver, certificates: TlsFiles, tmp_path: Path
) -> None:
    url = https_server.serve_file("/big.mp4", b"x" * 5000)

    with pytest.raises(EgressError) as caught:
        _download(url, tmp_path / "big.mp4", certificates, max_bytes=4000)

    assert caught.value.code == "source_too_large" and not caught.value.retryable
    assert not (tmp_path / "big.mp4").exists() and not (tmp_path / "big.mp4.part").exists()


def test_download_follows_redirects_only_to_allowed_https(
    https_server: Receiver, certificates: TlsFiles, tmp_path: Path
) -> None:
    target = https_server.serve_file("/final.mp4", b"video-bytes")
    hop = https_server.script("/hop", [Answer(302, {"Location": "/final.mp4"})])
    to_http = https_server.script("/to-http", [Answer(302, {"Location": "http://localhost/x.mp4"})])
    to_metadata = https_server.script(
        "/to-metadata", [Answer(302, {"Location": "https://169.254.169.254/latest/meta-data/"})]
    )
    to_link_local = https_server.script(
        "/to-link-local", [Answer(302, {"Location": "https://[fe80::1]/x.mp4"})]
    )

    fetched = _download(hop, tmp_path / "ok.mp4", certificates)
    with pytest.raises(EgressError, match="https://"):
        _download(to_http, tmp_path / "no.mp4", certificates)
    with pytest.raises(AddressNotAllowedError, match="metadata"):
        _download(to_metadata, tmp_path / "no.mp4", certificates)
    with pytest.raises(AddressNotAllowedError, match="link-local"):
        _download(to_link_local, tmp_path / "no.mp4", certificates)

    assert fetched.url == target  # type: ignore[attr-defined]
    assert (tmp_path / "ok.mp4").read_bytes() == b"video-bytes"


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [(404, "source_not_found", False), (503, "source_unavailable", True), (403, "source_refused", False)],
)
def test_download_errors_are_typed(
    https_server: Receiver, certificates: TlsFiles, tmp_path: Path, status: int, code: str, retryable: bool
) -> None:
    url = https_server.script("/x.mp4", [Answer(status)])

    with pytest.raises(EgressError) as caught:
        _download(url, tmp_path / "x.mp4", certificates)

    assert (caught.value.code, caught.value.retryable) == (code, retryable)


@contextlib.contextmanager
def _trickling_server(
    certificates: TlsFiles, *, length: int, every_s: float, send: int, header_lines: int = 0
) -> Iterator[tuple[str, threading.Event]]:
    """An https server that answers 200 with ``Content-Length: length`` (after ``header_lines``
    more header lines, one every ``every_s`` seconds) and then sends one body byte every
    ``every_s`` seconds, ``send`` bytes in all, holding the connection open after."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificates.cert), str(certificates.key))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()
    gone = threading.Event()

    def serve() -> None:
        try:
            raw, _ = listener.accept()
            with context.wrap_socket(raw, server_side=True) as conn:
                conn.recv(65536)
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n".encode())
                for _ in range(header_lines):
                    if stop.wait(every_s):
                        return
                    conn.sendall(b"X-Slow: a\r\n")
                conn.sendall(b"\r\n")
                for _ in range(send):
                    if stop.wait(every_s):
                        return
                    conn.sendall(b"x")
                stop.wait(30)
        except (OSError, ssl.SSLError):
            pass
        finally:
            gone.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{port}/slow.mp4", gone
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def test_download_deadline_holds_against_a_trickle(certificates: TlsFiles, tmp_path: Path) -> None:
    """One byte every 0.1 s never trips a per-read timeout; the total cap must still end it."""
    with _trickling_server(certificates, length=100, every_s=0.1, send=100) as (url, _gone):
        started = time.monotonic()
        with pytest.raises(EgressError) as caught:
            _download(url, tmp_path / "slow.mp4", certificates, timeout_s=1.0, read_timeout_s=5.0)
        elapsed = time.monotonic() - started

    assert caught.value.code == "source_timeout"
    assert not caught.value.retryable  # a too-slow source fails once, not on every attempt
    assert elapsed < 2.0
    assert not (tmp_path / "slow.mp4").exists() and not (tmp_path / "slow.mp4.part").exists()


def test_download_deadline_holds_against_a_silent_source(certificates: TlsFiles, tmp_path: Path) -> None:
    """Headers, then nothing: the wall-clock cap ends the wait even under a long per-read timeout."""
    with _trickling_server(certificates, length=100, every_s=0.1, send=0) as (url, _gone):
        started = time.monotonic()
        with pytest.raises(EgressError) as caught:
            _download(url, tmp_path / "quiet.mp4", certificates, timeout_s=1.0, read_timeout_s=20.0)
        elapsed = time.monotonic() - started

    assert (caught.value.code, caught.value.retryable) == ("source_timeout", False)
    assert elapsed < 2.0


def test_download_per_read_timeout_ends_a_stall(certificates: TlsFiles, tmp_path: Path) -> None:
    with _trickling_server(certificates, length=100, every_s=0.05, send=3) as (url, _gone):
        started = time.monotonic()
        with pytest.raises(EgressError) as caught:
            _download(url, tmp_path / "stall.mp4", certificates, timeout_s=20.0, read_timeout_s=0.5)
        elapsed = time.monotonic() - started

    assert (caught.value.code, caught.value.retryable) == ("source_timeout", False)
    assert elapsed < 3.0


def test_download_deadline_holds_against_trickled_headers(certificates: TlsFiles, tmp_path: Path) -> None:
    """A header line every 0.1 s: the response never starts, and the total cap still ends it."""
    with _trickling_server(certificates, length=10, every_s=0.1, send=10, header_lines=100) as (url, _):
        started = time.monotonic()
        with pytest.raises(EgressError) as caught:
            _download(url, tmp_path / "headers.mp4", certificates, timeout_s=1.0, read_timeout_s=5.0)
        elapsed = time.monotonic() - started

    assert (caught.value.code, caught.value.retryable) == ("source_timeout", False)
    assert elapsed < 2.0


def test_post_ends_at_its_total_cap_against_trickled_headers(certificates: TlsFiles) -> None:
    """A webhook receiver sending one header line every 0.1 s for 10 s: before, the attempt
    lasted as long as the receiver liked, since no single read waited past the timeout."""
    with _trickling_server(certificates, length=2, every_s=0.1, send=2, header_lines=100) as (url, _gone):
        started = time.monotonic()
        with pytest.raises(EgressError) as caught:
            post(
                url,
                body=b"{}",
                headers={"content-type": "application/json"},
                allow_private=True,
                timeout_s=1.0,
                connect_timeout_s=1.0,
                ca_bundle=certificates.ca,
            )
        elapsed = time.monotonic() - started

    assert (caught.value.code, caught.value.retryable) == ("timeout", True)
    assert "within 1 s" in caught.value.message
    assert elapsed < 2.0
