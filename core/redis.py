"""The one way to reach Redis (the broker and its neighbours): clients, key names and a ping.

Every key the service writes itself sits under ``BROKER_KEY_PREFIX``, beside the broker's queues,
so that several deployments (or test runs) can share one Redis.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from core.config import Settings

__all__ = ["async_redis_at", "broker_key", "ping_broker", "redis_at", "redis_client"]


def redis_at(
    url: str,
    *,
    connect_timeout_s: float = 2.0,
    timeout_s: float = 2.0,
    retry_on_timeout: bool = False,
) -> redis.Redis:
    """A client for ``url`` with short timeouts: callers degrade, never hang."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=timeout_s,
        retry_on_timeout=retry_on_timeout,
    )


def redis_client(
    settings: Settings,
    *,
    url: str | None = None,
    connect_timeout_s: float = 2.0,
    timeout_s: float = 2.0,
    retry_on_timeout: bool = False,
) -> redis.Redis:
    """A client for ``url`` (default: the broker), as ``redis_at``."""
    return redis_at(
        url or settings.broker_url,
        connect_timeout_s=connect_timeout_s,
        timeout_s=timeout_s,
        retry_on_timeout=retry_on_timeout,
    )


def async_redis_at(url: str, *, connect_timeout_s: float, health_check_interval_s: float) -> aioredis.Redis:
    """An asyncio client for ``url``, for a long-lived subscription: no read timeout, a health
    check on a connection idle this long instead."""
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout_s,
        health_check_interval=health_check_interval_s,
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
