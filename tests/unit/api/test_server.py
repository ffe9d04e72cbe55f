"""Which client addresses the per-address connection cap leaves alone: proxies uvicorn trusts."""

from __future__ import annotations

import pytest

from api.server import trusted_proxy


@pytest.mark.parametrize(
    ("host", "allowed", "trusted"),
    [
        ("127.0.0.1", "127.0.0.1,::1", True),
        ("::1", "127.0.0.1,::1", True),
        ("127.0.0.2", "127.0.0.1,::1", False),
        ("10.1.2.3", "127.0.0.1, 10.0.0.0/8", True),
        ("192.0.2.7", ["192.0.2.0/24"], True),
        ("::ffff:10.1.2.3", "10.0.0.0/8", True),
        ("203.0.113.9", "*", True),
        ("203.0.113.9", "unix:/run/api.sock,192.0.2.1", False),
        ("not-an-address", "10.0.0.0/8", False),
    ],
)
def test_trusted_proxy_follows_forwarded_allow_ips(
    host: str, allowed: str | list[str], trusted: bool
) -> None:
    assert trusted_proxy(host, allowed) is trusted
