"""Outbound HTTP to addresses clients chose (webhooks, https sources), guarded against SSRF.

A URL's host is resolved once, every address it resolves to is checked (an IPv6 address that
embeds an IPv4 one by that IPv4 address too), and the connection goes to a checked address: the
name is never resolved a second time, so DNS cannot swap in an internal address between check and
use (TLS still verifies the certificate against the name). Redirects are never followed blindly,
and no proxy from the environment is used, since a proxy would make its own, unchecked, resolution.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import httpx

__all__ = [
    "AddressNotAllowedError",
    "EgressError",
    "FetchedFile",
    "OutboundResponse",
    "address_problem",
    "check_url",
    "check_url_statically",
    "download",
    "post",
    "resolve_checked",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata and credential services: never a legitimate receiver, refused even when
# private addresses are allowed. AWS: instance metadata (169.254.169.254, fd00:ec2::254), the ECS
# and EKS Pod Identity credential agents (169.254.170.0/24: .2 and .23) and every service AWS
# places in its fd00:ec2::/32 prefix (fd00:ec2::23 is the Pod Identity agent); GCP, Azure and
# OpenStack share 169.254.169.254, GCP also answers on fd20:ce::254 and OpenStack on
# fe80::a9fe:a9fe; Tencent uses 169.254.0.23; Azure's WireServer (168.63.129.16) is a public
# address that only answers inside Azure; Alibaba 100.100.100.200; Oracle 192.0.0.192. The
# link-local ones are covered twice: all of link-local is refused in every mode as well.
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "169.254.169.254/32",
        "169.254.170.0/24",
        "fd00:ec2::/32",
        "fd20:ce::254/128",
        "168.63.129.16/32",
        "100.100.100.200/32",
        "192.0.0.192/32",
    )
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",
        "fd00:ec2::254",
        "100.100.100.200",
        "169.254.170.2",
        "169.254.170.23",
        "fd00:ec2::23",
        "fd20:ce::254",
        "fe80::a9fe:a9fe",
        "169.254.0.23",
        "168.63.129.16",
        "192.0.0.192",
    )
)
# NAT64: the well-known prefix (RFC 6052, a /96 only) and the local-use prefix (RFC 8215), inside
# which an operator may choose a /48, /56, /64 or /96 translation prefix, each placing the IPv4
# address at different bits. Every placement is checked: one of them is what the translator uses.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_NAT64_LOCAL_LENGTHS = (96, 64, 56, 48)
# The older ways of writing an IPv4 address as IPv6: "IPv4-compatible" ::a.b.c.d (RFC 4291,
# deprecated; :: and ::1 are not among them) and SIIT's "IPv4-translated" ::ffff:0:a.b.c.d
# (RFC 2765). A stack that still honours either reaches the IPv4 address inside.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_RESPONSE_KEEP_BYTES = 4096


class EgressError(Exception):
    """An outbound request was refused or failed. ``retryable``: another try later may work."""

    code = "egress_failed"

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


class AddressNotAllowedError(EgressError):
    code = "address_not_allowed"

    def __init__(self, message: str, *, private: bool = False) -> None:
        if private:
            # Said where the refusal is met (registering a webhook on this machine, say), so a
            # developer learns the switch without reading the code.
            message += (
                "; a deployment for local development can allow private and loopback addresses "
                "with WEBHOOK_ALLOW_PRIVATE=true (./scripts/platform --allow-private)"
            )
        super().__init__(message)
        self.private = private


def _rfc6052_ipv4(address: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address RFC 6052 embeds after a ``prefix_length`` translation prefix (bits 64 to 71,
    the "u" octet, are skipped)."""
    value = int(address).to_bytes(16, "big")
    if prefix_length == 96:
        return ipaddress.IPv4Address(value[12:16])
    start = prefix_length // 8
    octets = [value[i] for i in range(start, 16) if i != 8][:4]
    return ipaddress.IPv4Address(bytes(octets))


def _embedded_ipv4s(address: IPAddress) -> list[IPAddress]:
    """The IPv4 addresses an IPv6 address may stand for (mapped, translated, compatible, NAT64,
    6to4, Teredo), the most likely first; empty when it carries none."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in _IPV4_TRANSLATED or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address in _NAT64:
        return [_rfc6052_ipv4(address, 96)]
    if address in _NAT64_LOCAL:
        return [_rfc6052_ipv4(address, length) for length in _NAT64_LOCAL_LENGTHS]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return [address.teredo[1]]  # the client's address (the server's is the relay's business)
    return []


def _is_metadata(address: IPAddress) -> bool:
    return address in METADATA_ADDRESSES or any(
        address.version == network.version and address in network for network in METADATA_NETWORKS
    )


def address_problem(address: IPAddress | str, *, allow_private: bool) -> str | None:
    """Why the service must not connect to ``address`` (None when it may)."""
    original = ipaddress.ip_address(address) if isinstance(address, str) else address
    embedded = _embedded_ipv4s(original)
    if any(_is_metadata(candidate) for candidate in [original, *embedded]):
        return "a cloud metadata address"
    # Link-local is where clouds put metadata services under addresses no list keeps up with
    # (Tencent's 169.254.0.23, OpenStack's fe80::a9fe:a9fe) and never where a webhook receiver or
    # a video lives, so "allow private" does not extend to it, in any of its IPv6 spellings.
    if any(candidate.is_link_local for candidate in [original, *embedded]):
        return "a link-local address"
    # The private/public test reads the usual placement (the last 32 bits for a /96 prefix): the
    # other placements of a local-use NAT64 address hold zeros for an ordinary public address.
    # The deprecated spellings (compatible, translated) and Teredo are no public address of their
    # own, so they are judged as themselves as well as by what they carry.
    checked = embedded[0] if embedded else original
    judged = [checked, original] if _is_legacy_spelling(original) else [checked]
    if any(_is_not_unicast(candidate) for candidate in judged):
        return "not a unicast address"
    if allow_private:
        return None
    if any(candidate.is_loopback for candidate in judged):
        return "a loopback address"
    if any(candidate.is_private or candidate.is_reserved or not candidate.is_global for candidate in judged):
        return "a private or reserved address"
    return None


def _is_legacy_spelling(address: IPAddress) -> bool:
    return isinstance(address, ipaddress.IPv6Address) and (
        address in _IPV4_COMPATIBLE or address in _IPV4_TRANSLATED or address.teredo is not None
    )


def _is_not_unicast(address: IPAddress) -> bool:
    return (
        address.is_multicast or address.is_unspecified or address == ipaddress.IPv4Address("255.255.255.255")
    )


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def check_url(url: str, *, schemes: tuple[str, ...] = ("http", "https")) -> SplitResult:
    """The URL's parts when it is an absolute URL the service may call (no DNS here)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EgressError(f"{url!r} is not a valid URL: {exc}", code="invalid_url") from exc
    if parts.scheme not in schemes or not parts.hostname:
        raise EgressError(
            f"the URL must be an absolute {' or '.join(f'{s}://' for s in schemes)} URL", code="invalid_url"
        )
    if parts.username is not None or parts.password is not None:
        raise EgressError("the URL must not carry credentials", code="invalid_url")
    if port == 0:
        raise EgressError("the URL's port must be 1 to 65535", code="invalid_url")
    return parts


def check_url_statically(
    url: str, *, allow_private: bool, schemes: tuple[str, ...] = ("http", "https")
) -> SplitResult:
    """``check_url`` plus what can be refused without DNS: literal addresses and local names.
    Used when a URL is accepted; every connection checks the resolved addresses again."""
    parts = check_url(url, schemes=schemes)
    host = (parts.hostname or "").rstrip(".").lower()
    literal = _literal_address(host)
    if literal is not None:
        problem = address_problem(literal, allow_private=allow_private)
        if problem:
            raise AddressNotAllowedError(
                f"{host} is {problem}; the service does not call it",
                private=address_problem(literal, allow_private=True) is None,
            )
    elif not allow_private and (host in _LOCAL_NAMES or host.endswith(".localhost")):
        raise AddressNotAllowedError(f"{host} names this machine; the service does not call it", private=True)
    return parts


def resolve_checked(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """Every address ``host`` resolves to, each one checked; AddressNotAllowedError if any is refused
    (a name that mixes public and internal addresses is refused whole)."""
    literal = _literal_address(host)
    if literal is not None:
        candidates: list[IPAddress] = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise EgressError(f"{host} does not resolve ({exc})", code="dns_failed", retryable=True) from exc
        candidates = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if address not in candidates:
                candidates.append(address)
        if not candidates:
            raise EgressError(f"{host} resolves to no address", code="dns_failed", retryable=True)
    for address in candidates:
        problem = address_problem(address, allow_private=allow_private)
        if problem:
            shown = host if literal is not None else f"{host} resolves to {address}, which"
            raise AddressNotAllowedError(
                f"{shown} is {problem}; the service does not call it",
                private=address_problem(address, allow_private=True) is None,
            )
    return candidates


def _ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


def _pinned_url(parts: SplitResult, address: IPAddress) -> str:
    host = f"[{address}]" if address.version == 6 else str(address)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return f"{parts.scheme}://{host}:{port}{target}"


def _host_header(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


@dataclass(frozen=True)
class OutboundResponse:
    status_code: int
    headers: dict[str, str]
    remote_address: str
    body_head: bytes  # the first few KiB of the body, for logs


@contextmanager
def _pinned_stream(
    method: str,
    url: str,
    *,
    allow_private: bool,
    timeout: httpx.Timeout,
    ca_bundle: Path | None,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    schemes: tuple[str, ...] = ("http", "https"),
    trace: Callable[[str, dict[str, Any]], None] | None = None,
) -> Iterator[tuple[httpx.Response, str]]:
    """Sends one request to a checked address of the URL's host (the first that accepts a
    connection) and yields the streaming response with the address used."""
    parts = check_url(url, schemes=schemes)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve_checked(host, port, allow_private=allow_private)
    request_headers = {**(headers or {}), "Host": _host_header(parts)}
    extensions = {"sni_hostname": host} if parts.scheme == "https" and _literal_address(host) is None else {}
    verify: ssl.SSLContext | bool = _ssl_context(ca_bundle) if parts.scheme == "https" else False
    last_error: Exception | None = None
    with httpx.Client(follow_redirects=False, trust_env=False, verify=verify, timeout=timeout) as client:
        for address in addresses:
            request = client.build_request(
                method, _pinned_url(parts, address), headers=request_headers, content=content
            )
            request.extensions.update(extensions)
            if trace is not None:
                request.extensions["trace"] = trace
            try:
                response = client.send(request, stream=True)
            except httpx.ConnectError as exc:
                last_error = exc
                continue  # the next address of the name may answer
            except httpx.TimeoutException as exc:
                raise EgressError(
                    f"{host} did not answer in time ({type(exc).__name__})", code="timeout", retryable=True
                ) from exc
            except httpx.HTTPError as exc:
                raise EgressError(
                    f"request to {host} failed: {exc}", code="request_failed", retryable=True
                ) from exc
            try:
                yield response, str(address)
            finally:
                response.close()
            return
    reason = str(last_error) if last_error else "no address"
    if last_error is not None and "CERTIFICATE" in reason.upper():
        raise EgressError(f"TLS with {host} failed: {reason}", code="tls_failed", retryable=True)
    raise EgressError(f"could not connect to {host}: {reason}", code="connect_failed", retryable=True)


def post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    allow_private: bool,
    timeout_s: float,
    connect_timeout_s: float,
    ca_bundle: Path | None = None,
) -> OutboundResponse:
    """POSTs ``body`` to ``url`` through the address guard; a redirect is answered as it is, not followed.

    ``timeout_s`` caps the whole attempt on the wall clock, connection included, however slowly
    the receiver answers (headers trickled one line at a time too): at the cap a timer cuts the
    connection and the attempt is a retryable ``timeout``. An answer whose status and headers came
    in time counts even if its body is cut short."""
    deadline = time.monotonic() + timeout_s
    timeout = httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s))
    with _Deadline(deadline) as watch:
        try:
            with _pinned_stream(
                "POST",
                url,
                allow_private=allow_private,
                timeout=timeout,
                ca_bundle=ca_bundle,
                headers=headers,
                content=body,
                trace=watch.trace,
            ) as (response, address):
                head = bytearray()
                try:
                    for chunk in response.iter_bytes():
                        head.extend(chunk[: _RESPONSE_KEEP_BYTES - len(head)])
                        if len(head) >= _RESPONSE_KEEP_BYTES or time.monotonic() > deadline:
                            break  # the body does not matter; a receiver that keeps talking is cut off
                except httpx.HTTPError:
                    pass  # the status is what counts; a body cut short is not a failed delivery
                return OutboundResponse(
                    status_code=response.status_code,
                    headers={key.lower(): value for key, value in response.headers.items()},
                    remote_address=address,
                    body_head=bytes(head),
                )
        except EgressError as exc:
            if watch.fired.is_set():
                raise EgressError(
                    f"the receiver did not answer within {timeout_s:g} s", code="timeout", retryable=True
                ) from exc
            raise


@dataclass(frozen=True)
class FetchedFile:
    path: Path
    size: int
    url: str  # the URL the bytes came from, after redirects
    content_type: str | None


class _Deadline:
    """Ends a download when the wall-clock deadline passes, whatever the peer sends (headers or
    body, however slowly): a timer shuts the connection's socket down, which wakes a read blocked
    on it. ``trace`` is the request's httpcore trace hook, which hands over each new connection's
    socket; ``fired`` tells the reader that the error it then sees is the deadline's."""

    _CONNECTED = ("connection.connect_tcp.complete", "connection.start_tls.complete")

    def __init__(self, deadline: float) -> None:
        self.fired = threading.Event()
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True

    def trace(self, name: str, info: dict[str, Any]) -> None:
        if name not in self._CONNECTED:
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._socket = sock
            late = self.fired.is_set()
        if late:
            self._shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired.set()
            sock = self._socket
        if sock is not None:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with suppress(OSError):
            # The plain socket's shutdown, also for TLS: wakes the reader, leaves TLS state alone.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


def _too_slow(timeout_s: float) -> EgressError:
    # Not retried: a source that cannot be read within the cap on one try will not on the next.
    return EgressError(f"the source did not download within {timeout_s:g} s", code="source_timeout")


def download(
    url: str,
    destination: Path,
    *,
    allow_private: bool,
    max_bytes: int,
    timeout_s: float,
    connect_timeout_s: float,
    max_redirects: int,
    read_timeout_s: float = 30.0,
    ca_bundle: Path | None = None,
) -> FetchedFile:
    """Streams an https:// URL into ``destination`` under a size cap and a total time cap.
    Each redirect is checked like the first URL (https only, guarded addresses).

    ``timeout_s`` bounds the whole download on the wall clock, however slowly the bytes come;
    ``read_timeout_s`` bounds each wait for the next bytes. A body past either is a
    ``source_timeout`` that is not retried."""
    deadline = time.monotonic() + timeout_s
    current = url
    partial = destination.with_name(destination.name + ".part")
    with _Deadline(deadline) as watch:
        try:
            for _ in range(max_redirects + 1):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _too_slow(timeout_s)
                timeout = httpx.Timeout(
                    min(read_timeout_s, remaining), connect=min(connect_timeout_s, remaining)
                )
                with _pinned_stream(
                    "GET",
                    current,
                    allow_private=allow_private,
                    timeout=timeout,
                    ca_bundle=ca_bundle,
                    schemes=("https",),
                    trace=watch.trace,
                ) as (response, _address):
                    status = response.status_code
                    if status in (301, 302, 303, 307, 308):
                        location = response.headers.get("location")
                        if not location:
                            raise EgressError(
                                f"{current} redirected without a Location", code="source_unreadable"
                            )
                        current = urljoin(current, location)
                        continue
                    if status in (404, 410):
                        raise EgressError(
                            f"{current} answered {status}: the source does not exist", code="source_not_found"
                        )
                    if status == 429 or status >= 500:
                        raise EgressError(
                            f"{current} answered {status}", code="source_unavailable", retryable=True
                        )
                    if status != 200:
                        raise EgressError(f"{current} answered {status}", code="source_refused")
                    declared = response.headers.get("content-length")
                    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                        raise EgressError(
                            f"the source is {int(declared)} bytes, past the {max_bytes} byte limit",
                            code="source_too_large",
                        )
                    size = 0
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        with partial.open("wb") as sink:
                            try:
                                # Without a chunk size: each piece as it arrives, so the clock is read
                                # after every network read, not after a full buffer.
                                for chunk in response.iter_bytes():
                                    size += len(chunk)
                                    if size > max_bytes:
                                        raise EgressError(
                                            f"the source is past the {max_bytes} byte limit",
                                            code="source_too_large",
                                        )
                                    if time.monotonic() > deadline:
                                        raise _too_slow(timeout_s)
                                    sink.write(chunk)
                            except EgressError:
                                raise
                            except Exception as exc:
                                if watch.fired.is_set():
                                    raise _too_slow(timeout_s) from exc
                                raise
                            if watch.fired.is_set():
                                raise _too_slow(timeout_s)  # the connection was cut: what came is not all
                    except httpx.TimeoutException as exc:
                        partial.unlink(missing_ok=True)
                        waited = min(read_timeout_s, timeout_s)
                        raise EgressError(
                            f"the source sent nothing for {waited:g} s ({type(exc).__name__})",
                            code="source_timeout",
                        ) from exc
                    except httpx.HTTPError as exc:
                        partial.unlink(missing_ok=True)
                        raise EgressError(
                            f"the download broke off: {exc}", code="source_unavailable", retryable=True
                        ) from exc
                    except BaseException:
                        partial.unlink(missing_ok=True)
                        raise
                    partial.replace(destination)
                    return FetchedFile(
                        path=destination,
                        size=size,
                        url=current,
                        content_type=response.headers.get("content-type"),
                    )
            raise EgressError(f"{url} redirected more than {max_redirects} times", code="source_unreadable")
        except EgressError as exc:
            if watch.fired.is_set():
                raise _too_slow(timeout_s) from exc  # whatever broke, the deadline cut it
            raise
