"""The address guard: every refused kind of address and URL, names resolved and checked before
use. Nothing is sent."""

from __future__ import annotations

import ipaddress

import pytest

from core.egress.guard import (
    AddressNotAllowedError,
    EgressError,
    address_problem,
    check_url_statically,
    resolve_checked,
)

REFUSED_WITHOUT_ALLOW_PRIVATE = [
    ("127.0.0.1", "loopback"),
    ("127.9.9.9", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 for 127.0.0.1
    ("64:ff9b:1::7f00:1", "loopback"),  # local-use NAT64 (RFC 8215) for 127.0.0.1
    ("64:ff9b:1::a00:1", "private"),  # local-use NAT64 for 10.0.0.1
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("::ffff:10.0.0.1", "private"),
    ("100.64.0.1", "private"),  # carrier-grade NAT
    ("fd00::1", "private"),
    ("::a00:1", "private"),  # IPv4-compatible 10.0.0.1
    ("::ffff:0:a00:1", "private"),  # IPv4-translated 10.0.0.1
    ("::808:808", "reserved"),  # IPv4-compatible is deprecated, whatever it carries
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "reserved"),  # Teredo, client 8.8.8.8
]
REFUSED_ALWAYS = [
    ("169.254.169.254", "metadata"),
    ("::ffff:169.254.169.254", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("100.100.100.200", "metadata"),
    ("169.254.170.2", "metadata"),  # ECS task credentials
    ("169.254.170.23", "metadata"),  # EKS Pod Identity agent
    ("fd00:ec2::23", "metadata"),  # EKS Pod Identity agent over IPv6
    ("::ffff:169.254.170.23", "metadata"),
    ("64:ff9b:1::a9fe:a9fe", "metadata"),  # local-use NAT64, /96: 169.254.169.254
    ("64:ff9b:1::a9fe:aa17", "metadata"),  # local-use NAT64, /96: 169.254.170.23
    ("64:ff9b:1:a9fe:a9:fe00::", "metadata"),  # local-use NAT64, /48 placement
    ("64:ff9b:1:0:a9:fea9:fe00:0", "metadata"),  # local-use NAT64, /64 placement
    ("64:ff9b::a9fe:a9fe", "metadata"),  # well-known NAT64
    ("168.63.129.16", "metadata"),  # Azure WireServer: public, answers only inside Azure
    ("::ffff:168.63.129.16", "metadata"),
    ("0.0.0.0", "unicast"),
    ("::", "unicast"),
    ("224.0.0.1", "unicast"),
    ("255.255.255.255", "unicast"),
    ("::e000:1", "unicast"),  # IPv4-compatible 224.0.0.1
    # Link-local and the metadata services in and around it, in every spelling, whatever
    # WEBHOOK_ALLOW_PRIVATE says.
    ("169.254.0.23", "metadata"),  # Tencent
    ("fd20:ce::254", "metadata"),  # GCP over IPv6
    ("fe80::a9fe:a9fe", "metadata"),  # OpenStack over IPv6
    ("::a9fe:a9fe", "metadata"),  # IPv4-compatible 169.254.169.254
    ("::ffff:0:a9fe:a9fe", "metadata"),  # IPv4-translated 169.254.169.254
    ("2002:a9fe:a9fe::1", "metadata"),  # 6to4 around 169.254.169.254
    ("2001:0:4136:e378:8000:63bf:5601:5601", "metadata"),  # Teredo, client 169.254.169.254
    ("169.254.10.10", "link-local"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("febf:ffff::1", "link-local"),  # the top of fe80::/10
    ("::ffff:169.254.10.10", "link-local"),  # IPv4-mapped
    ("::a9fe:a0a", "link-local"),  # IPv4-compatible
    ("::ffff:0:a9fe:a0a", "link-local"),  # IPv4-translated
    ("64:ff9b::a9fe:a0a", "link-local"),  # well-known NAT64
    ("64:ff9b:1::a9fe:a0a", "link-local"),  # local-use NAT64, /96
    ("64:ff9b:1:a9fe:a:a00::", "link-local"),  # local-use NAT64, /48 placement
    ("2002:a9fe:a0a::1", "link-local"),  # 6to4
]


@pytest.mark.parametrize(("address", "kind"), REFUSED_WITHOUT_ALLOW_PRIVATE + REFUSED_ALWAYS)
def test_internal_addresses_are_refused(address: str, kind: str) -> None:
    problem = address_problem(address, allow_private=False)

    assert problem is not None and kind in problem


@pytest.mark.parametrize(("address", "kind"), REFUSED_ALWAYS)
def test_metadata_and_non_unicast_stay_refused_when_private_is_allowed(address: str, kind: str) -> None:
    problem = address_problem(address, allow_private=True)

    assert problem is not None and kind in problem


@pytest.mark.parametrize(("address", "_kind"), REFUSED_WITHOUT_ALLOW_PRIVATE)
def test_private_addresses_are_allowed_when_configured(address: str, _kind: str) -> None:
    assert address_problem(address, allow_private=True) is None


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "64:ff9b:1::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address), allow_private=False) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.5:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::1]:9000/",
        "http://localhost/hook",
        "http://api.localhost/hook",
    ],
)
def test_urls_to_internal_hosts_are_refused_when_accepted(url: str) -> None:
    with pytest.raises(AddressNotAllowedError):
        check_url_statically(url, allow_private=False)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/x", "http"),
        ("https://user:pass@example.com/x", "credentials"),
        ("/relative/path", "absolute"),
        ("http://example.com:0/x", "port"),
        ("http://example.com:99999/x", "valid URL"),
    ],
)
def test_malformed_urls_are_refused(url: str, fragment: str) -> None:
    with pytest.raises(EgressError, match=fragment):
        check_url_statically(url, allow_private=False)


def test_a_name_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(AddressNotAllowedError, match=r"localhost resolves to 127\.0\.0\.1"):
        resolve_checked("localhost", 80, allow_private=False)


def test_a_name_that_does_not_resolve_is_retryable() -> None:
    with pytest.raises(EgressError) as caught:
        resolve_checked("no-such-host.invalid", 80, allow_private=False)

    assert caught.value.code == "dns_failed" and caught.value.retryable
