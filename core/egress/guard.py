"""The address guard of outbound HTTP: which addresses the service may call, URLs checked without
DNS, and names resolved once with every address checked.

An IPv6 address that embeds an IPv4 one is judged by that IPv4 address too; cloud metadata and
link-local addresses are refused even where private addresses are allowed.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "AddressNotAllowedError",
    "EgressError",
    "IPAddress",
    "address_problem",
    "check_url",
    "check_url_statically",
    "literal_address",
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


def literal_address(host: str) -> IPAddress | None:
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
    literal = literal_address(host)
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
    literal = literal_address(host)
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
