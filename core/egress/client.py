"""Outbound HTTP to addresses clients chose (webhooks, https sources), through the address guard.

A URL's host is resolved once (``core.egress.guard``) and the connection goes to a checked
address: the name is never resolved a second time, so DNS cannot swap in an internal address
between check and use (TLS still verifies the certificate against the name). Redirects are never
followed blindly, and no proxy from the environment is used, since a proxy would make its own,
unchecked, resolution.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urljoin

import httpx

from core.egress.guard import EgressError, IPAddress, check_url, literal_address, resolve_checked

__all__ = ["FetchedFile", "OutboundResponse", "download", "post"]

_RESPONSE_KEEP_BYTES = 4096


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
    extensions = {"sni_hostname": host} if parts.scheme == "https" and literal_address(host) is None else {}
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
