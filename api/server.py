"""The HTTP protocol `deepfakestream serve` runs uvicorn with: uvicorn's own, plus the two limits
a reverse proxy would otherwise give a directly exposed API.

- ``HEADER_TIMEOUT_S``: a request's headers must be complete this long after its first byte (the
  connection's first request: after the connection opens), or the connection is closed. uvicorn
  times out keep-alive connections only between requests, so one that sent half its headers, or
  nothing, stayed open for good.
- ``MAX_CONNECTIONS_PER_ADDRESS``: connections one client address may hold open in one API
  process; past it a new connection is closed at once, before anything is read. Addresses trusted
  as proxies (uvicorn's ``FORWARDED_ALLOW_IPS``) are not counted: every client of a proxy comes
  from its address, and the proxy keeps its own per-client limits.

Both uvicorn parsers (httptools, the default, and h11) get the same limits.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections import Counter
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.config import get_settings
from core.metrics import CONNECTIONS_CLOSED

__all__ = ["GuardedH11Protocol", "GuardedHttpToolsProtocol", "trusted_proxy"]

# Open connections by client address, in this process (the event loop's thread only).
_open_by_address: Counter[str] = Counter()


@functools.cache
def _trusted_networks(
    allowed: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None:
    """The networks in FORWARDED_ALLOW_IPS; None when it trusts every address (``*``)."""
    networks = []
    for entry in allowed:
        if entry == "*":
            return None
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue  # a unix socket's name, which no TCP client has
    return tuple(networks)


def trusted_proxy(host: str, forwarded_allow_ips: str | list[str]) -> bool:
    """Whether uvicorn trusts ``host`` as a proxy (its X-Forwarded-For names the client)."""
    entries = forwarded_allow_ips.split(",") if isinstance(forwarded_allow_ips, str) else forwarded_allow_ips
    networks = _trusted_networks(tuple(entry.strip() for entry in entries if entry.strip()))
    if networks is None:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    # A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return any(address in network or (mapped is not None and mapped in network) for network in networks)


class _ConnectionLimits:
    """Mixed into a uvicorn HTTP protocol (both keep ``transport``, ``client``, ``cycle`` and
    ``config``); a refused connection never reaches the protocol itself."""

    transport: asyncio.Transport
    client: tuple[str, int] | None
    cycle: Any
    config: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self._header_timeout_s = settings.header_timeout_s
        self._max_per_address = settings.max_connections_per_address
        self._counted_address: str | None = None
        self._refused = False
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        host = _peer_host(transport)
        if (
            host is not None
            and self._max_per_address > 0
            and not trusted_proxy(host, self.config.forwarded_allow_ips)
        ):
            if _open_by_address[host] >= self._max_per_address:
                self._refused = True
                CONNECTIONS_CLOSED.labels(reason="address_cap").inc()
                transport.close()
                return
            _open_by_address[host] += 1
            self._counted_address = host
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._disarm_header_deadline()
        if self._counted_address is not None:
            _open_by_address[self._counted_address] -= 1
            if _open_by_address[self._counted_address] <= 0:
                del _open_by_address[self._counted_address]
            self._counted_address = None
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self._header_deadline is None:
            self._arm_header_deadline()  # the first bytes of the connection's next request
        before = self.cycle
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not before:
            self._disarm_header_deadline()  # the parser has a whole request head

    def _arm_header_deadline(self) -> None:
        loop = asyncio.get_running_loop()
        self._header_deadline = loop.call_later(self._header_timeout_s, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport is not None and not self.transport.is_closing():
            CONNECTIONS_CLOSED.labels(reason="header_timeout").inc()
            self.transport.close()


def _peer_host(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return None  # a unix socket


class GuardedHttpToolsProtocol(_ConnectionLimits, HttpToolsProtocol):
    """uvicorn's httptools protocol with the header deadline and the per-address cap."""


class GuardedH11Protocol(_ConnectionLimits, H11Protocol):
    """uvicorn's h11 protocol with the header deadline and the per-address cap."""
