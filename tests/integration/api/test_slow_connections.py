"""Connections that never finish their headers, and many connections from one address, against
the API as `deepfakestream serve` runs it (uvicorn on a port, raw sockets), with each of uvicorn's
parsers:

- a connection that sends half a request head (or nothing, or half of its second request's head)
  is closed at HEADER_TIMEOUT_S; headers that arrive slowly but in time are served;
- past MAX_CONNECTIONS_PER_ADDRESS, a new connection from that address is closed at once, while
  another address is served, and the address is served again once its connections close.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.utils.platform import (
    ServiceProcess,
    clear_broker_keys,
    free_port,
    fresh_database,
    platform_env,
)
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.integration

HEADER_TIMEOUT_S = 1.5
MAX_PER_ADDRESS = 5
HALF_HEAD = b"GET /healthz HTTP/1.1\r\nHost: api\r\nX-Slow: "
# A second loopback address: Linux answers for all of 127/8.
OTHER_ADDRESS = "127.0.0.2"


@dataclass
class Api:
    process: ServiceProcess
    port: int

    def connect(self, source: str = "127.0.0.1") -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10, source_address=(source, 0))


@pytest.fixture(scope="module", params=["httptools", "h11"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp(f"slow-connections-{request.param}")
    prefix = f"dfs-test-conns-{secrets.token_hex(4)}:"
    with fresh_database() as database_url:
        env = platform_env(
            database_url=database_url,
            storage_url=(root / "storage").as_uri(),
            broker_key_prefix=prefix,
            work_dir=root / "work",
            extra={
                "HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
                "MAX_CONNECTIONS_PER_ADDRESS": str(MAX_PER_ADDRESS),
                # Loopback is not a trusted proxy here, so its connections are counted.
                "FORWARDED_ALLOW_IPS": "192.0.2.1",
            },
        )
        port = free_port()
        process = ServiceProcess(
            "api",
            [sys.executable, "-m", "core.cli", "serve", "--port", str(port), "--http", request.param],
            env=env,
            log_path=root / "logs" / "api.log",
        ).start()
        try:
            wait_for(
                lambda: (
                    process.alive() and httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success
                ),
                timeout_s=60,
                what=f"the API on port {port}\n{process.tail()}",
            )
            yield Api(process=process, port=port)
        finally:
            process.stop()
            clear_broker_keys(prefix)


def _closed_after(sock: socket.socket, *, within_s: float) -> float | None:
    """Seconds until the server closes ``sock`` (reading and dropping what it sends), or None if
    it is still open after ``within_s``."""
    started = time.monotonic()
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            sock.settimeout(max(0.01, within_s - (time.monotonic() - started)))
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def _get(api: Api, *, source: str = "127.0.0.1") -> int:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=10) as client:
        return client.get(f"http://127.0.0.1:{api.port}/healthz").status_code


def test_unfinished_headers_are_closed_at_the_header_timeout(api: Api) -> None:
    """Before, all of these stayed open (1,000 such sockets held 1,000 descriptors for good)."""
    with contextlib.ExitStack() as stack:
        silent = stack.enter_context(api.connect())
        half = stack.enter_context(api.connect())
        half.sendall(HALF_HEAD)
        # A keep-alive connection: one whole request answered, then half of the next head.
        second = stack.enter_context(api.connect())
        second.sendall(b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n")
        assert second.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(0.5)
        second.sendall(HALF_HEAD)
        opened = time.monotonic()

        closed = {
            name: _closed_after(sock, within_s=HEADER_TIMEOUT_S + 3)
            for name, sock in (("silent", silent), ("half", half), ("second request", second))
        }
        elapsed = time.monotonic() - opened

    assert all(seconds is not None for seconds in closed.values()), f"still open: {closed}"
    assert elapsed < HEADER_TIMEOUT_S + 2.0, closed


def test_headers_sent_slowly_but_in_time_are_served(api: Api) -> None:
    with api.connect() as sock:
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: api\r\n", b"X-Slow: yes\r\n", b"\r\n"):
            sock.sendall(piece)
            time.sleep(HEADER_TIMEOUT_S / 5)
        sock.settimeout(10)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_connections_past_the_per_address_cap_are_closed_at_once(api: Api) -> None:
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(api.connect()) for _ in range(MAX_PER_ADDRESS)]
        for sock in held:
            sock.sendall(HALF_HEAD)
        time.sleep(0.2)  # the server has accepted them all

        with api.connect() as extra:
            refused_after = _closed_after(extra, within_s=HEADER_TIMEOUT_S / 2)
        assert refused_after is not None, "a connection past the cap was kept open"
        assert _get(api, source=OTHER_ADDRESS) == 200  # another address is not affected

    # The held connections closed: the address is served again.
    wait_for(lambda: _get(api) == 200, timeout_s=5, what="a request after the address's connections closed")


def test_upgrade_requests_do_not_use_up_the_cap(api: Api) -> None:
    """An Upgrade: websocket request is answered as plain HTTP: handed to uvicorn's WebSocket
    protocol, its connection left the per-address count behind when it closed."""
    upgrade = (
        b"GET /healthz HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    for _ in range(MAX_PER_ADDRESS + 1):
        with api.connect() as sock:
            sock.sendall(upgrade)
            sock.settimeout(10)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")

    wait_for(lambda: _get(api) == 200, timeout_s=5, what="a request after the upgrade attempts")
