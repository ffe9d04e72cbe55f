"""Per-tenant request rate limits: token buckets in Redis, 429 with ``Retry-After`` past them.

Every authenticated request draws from its tenant's bucket (``RATE_LIMIT_PER_S`` sustained, up to
``RATE_LIMIT_BURST`` at once); writes also draw from a smaller one (``RATE_LIMIT_WRITES_*``).
Failed authentications draw from their client address's bucket (``AUTH_FAILURES_*``); an
address with an empty one gets 429 for every missing, wrong or revoked key until tokens come
back. A valid key is never refused for that: an address is often shared (an office, a NAT, a
CI runner), and one client's bad key must not lock its neighbours, or itself once it has the
right key, out. The budget tells a client that keeps sending bad keys to back off (and logs
it); what keeps keys from being guessed is their 256 random bits. The
buckets are GCRA cells shared by every API process: one timestamp per bucket, updated by a Lua
script, so two processes never both spend the same token. When Redis cannot be reached the
limiter lets requests through (and says so in the log): the database, not the limiter, decides
whether the API works.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from core.config import Settings
from core.errors import TooManyRequestsError
from core.logs import log_event
from core.process_local import per_process
from core.redis import broker_key, redis_client

__all__ = [
    "READ_METHODS",
    "RateLimiter",
    "enforce_rate_limit",
    "get_rate_limiter",
    "record_auth_failure",
]

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# After Redis fails, the limiter stands aside this long before asking it again: a dead Redis
# must not add a connection timeout to every request.
_OUTAGE_BACKOFF_S = 5.0
_REDIS_TIMEOUT_S = 0.5

# KEYS: the buckets this request draws from. ARGV: per bucket, microseconds per token and burst.
# A bucket stores its "theoretical arrival time" (TAT); a request is allowed when TAT + one
# interval stays within burst × interval of now. Either every bucket is charged or none is.
# Returns {allowed (0/1), microseconds until allowed}.
_GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local next_tats = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local next_tat = tat + interval
  local allowed_at = next_tat - burst * interval
  if allowed_at > now and allowed_at - now > wait then wait = allowed_at - now end
  next_tats[i] = next_tat
end
if wait > 0 then return {0, string.format('%.0f', wait)} end
for i, key in ipairs(KEYS) do
  local ttl_ms = math.ceil((next_tats[i] - now) / 1000) + 1000
  redis.call('SET', key, string.format('%.0f', next_tats[i]), 'PX', ttl_ms)
end
return {1, '0'}
"""


@dataclass(frozen=True)
class _Bucket:
    name: str
    per_s: float
    burst: int

    @property
    def interval_us(self) -> int:
        return max(1, round(1_000_000 / self.per_s))


class RateLimiter:
    """Checks and charges a tenant's buckets. ``check`` raises TooManyRequestsError past a limit."""

    def __init__(
        self,
        client: Any,
        *,
        key_prefix: str,
        requests: _Bucket,
        writes: _Bucket,
        auth_failures: _Bucket | None = None,
    ) -> None:
        self._client = client
        self._script = client.register_script(_GCRA_SCRIPT)
        self._prefix = key_prefix
        self._requests = requests
        self._writes = writes
        self._auth_failures = auth_failures or _Bucket("auth-failures", 1.0, 30)
        self._lock = threading.Lock()
        self._skip_until = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        client = redis_client(
            settings,
            url=settings.rate_limit_redis_url,
            connect_timeout_s=_REDIS_TIMEOUT_S,
            timeout_s=_REDIS_TIMEOUT_S,
            retry_on_timeout=False,
        )
        return cls(
            client,
            key_prefix=broker_key(settings, "ratelimit:"),
            requests=_Bucket("requests", settings.rate_limit_per_s, settings.rate_limit_burst),
            writes=_Bucket("writes", settings.rate_limit_writes_per_s, settings.rate_limit_writes_burst),
            auth_failures=_Bucket(
                "auth-failures", settings.auth_failures_per_min / 60.0, settings.auth_failures_burst
            ),
        )

    def check(self, *, tenant_id: uuid.UUID, write: bool) -> None:
        buckets = self._tenant_buckets(write)
        answer = self._run(self._script, self._tenant_keys(tenant_id, buckets), buckets)
        if answer is None or answer[0]:
            return
        raise self._tenant_limited(write, answer[1])

    def record_failure(self, client: str) -> None:
        """Spend one of ``client``'s failed-authentication tokens; TooManyRequestsError when none
        was left (the failure is then answered 429 rather than 401)."""
        answer = self._run(self._script, [self._client_key(client)], [self._auth_failures])
        if answer is not None and not answer[0]:
            log_event(log, "api.auth.client_limited", level=logging.WARNING, client=client)
            raise _client_limited(answer[1])

    def _tenant_buckets(self, write: bool) -> list[_Bucket]:
        return [self._requests, self._writes] if write else [self._requests]

    def _tenant_keys(self, tenant_id: uuid.UUID, buckets: list[_Bucket]) -> list[str]:
        return [f"{self._prefix}{tenant_id}:{bucket.name}" for bucket in buckets]

    def _tenant_limited(self, write: bool, wait_us: int) -> TooManyRequestsError:
        retry_after = _seconds(wait_us)
        limiting = self._writes if write else self._requests
        what = "writes" if write else "requests"
        return TooManyRequestsError(
            f"too many {what}: this tenant may send {limiting.per_s:g} per second "
            f"(bursts of {limiting.burst}); retry after {retry_after} s",
            code="rate_limited",
            retry_after_s=retry_after,
        )

    def _run(self, script: Any, keys: list[str], buckets: list[_Bucket]) -> tuple[int, int] | None:
        """The script's two numbers, or None while the limiter stands aside (Redis unreachable)."""
        if time.monotonic() < self._skip_until:
            return None
        arguments = [value for bucket in buckets for value in (bucket.interval_us, bucket.burst)]
        try:
            answer = script(keys=keys, args=arguments)
        except Exception as exc:  # redis raises many types (connection, timeout, auth, script)
            self._stand_aside(exc)
            return None
        return int(answer[0]), int(answer[1])

    def _client_key(self, client: str) -> str:
        return f"{self._prefix}client:{client}:{self._auth_failures.name}"

    def _stand_aside(self, exc: Exception) -> None:
        with self._lock:
            if time.monotonic() < self._skip_until:
                return
            self._skip_until = time.monotonic() + _OUTAGE_BACKOFF_S
        log_event(
            log,
            "api.ratelimit.unavailable",
            level=logging.WARNING,
            error=type(exc).__name__,
            retry_in_s=_OUTAGE_BACKOFF_S,
        )


def _client_limited(wait_us: int) -> TooManyRequestsError:
    retry_after = _seconds(wait_us)
    return TooManyRequestsError(
        f"too many requests without a valid API key from this address; retry after {retry_after} s",
        code="too_many_auth_failures",
        retry_after_s=retry_after,
    )


def _seconds(wait_us: int) -> int:
    """A Retry-After in whole seconds, at least 1."""
    return max(1, math.ceil(wait_us / 1_000_000))


@per_process
def get_rate_limiter(settings: Settings) -> RateLimiter:
    return RateLimiter.from_settings(settings)


def enforce_rate_limit(settings: Settings, *, tenant_id: uuid.UUID, method: str) -> None:
    """TooManyRequestsError (429, Retry-After) when the tenant is past its request or write rate."""
    if not settings.rate_limit_enabled:
        return
    get_rate_limiter(settings).check(tenant_id=tenant_id, write=method.upper() not in READ_METHODS)


def record_auth_failure(settings: Settings, *, client: str) -> None:
    """Spends one of ``client``'s failed-key tokens; TooManyRequestsError when none was left."""
    if settings.rate_limit_enabled:
        get_rate_limiter(settings).record_failure(client)
