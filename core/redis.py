"""The one way to reach Redis (the broker and its neighbours): clients, key names and a ping.

Every key the service writes itself sits under ``BROKER_KEY_PREFIX``, beside the broker's queues,
so that several deployments (or test runs) can share one Redis.
"""

from __future__ import annotations

from typing import Any

import redis

from core.config import Settings

__all__ = ["broker_key", "ping_broker", "redis_client"]


def redis_client(
    settings: Settings,
    *,
    url: str | None = None,
    connect_timeout_s: float = 2.0,
    timeout_s: float = 2.0,
    **options: Any,
) -> redis.Redis:
    """A client for ``url`` (default: the broker) with short timeouts: callers degrade, never hang."""
    return redis.Redis.from_url(
        url or settings.broker_url,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=timeout_s,
        **options,
    )


def broker_key(settings: Settings, name: str) -> str:
    """``name`` under this deployment's prefix."""
    return f"{settings.broker_key_prefix}{name}"


def ping_broker(settings: Settings) -> None:
    """Raises when the broker does not answer a PING within the short timeouts."""
    client = redis_client(settings)
    try:
        client.ping()
    finally:
        client.close()
