"""Per-tenant rate limits: past its request or write rate a tenant gets 429 with Retry-After and a
typed error, other tenants are not slowed, the budget comes back with time, and concurrent API
processes share one bucket in Redis. Requests without a valid key are limited per client address:
an address that keeps failing is refused until its budget comes back, but a valid key from that
address is still served."""

from __future__ import annotations

import math
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from api.ratelimit import RateLimiter
from core.config import load_settings
from core.errors import TooManyRequestsError
from tests.utils.platform import ServiceProcess, start_api
from tests.utils.services import RedisServer
from tests.utils.stack import PrivateStack

pytestmark = pytest.mark.integration

PER_S = 5
BURST = 10
WRITES_PER_S = 1
WRITES_BURST = 3
AUTH_FAILURES_PER_MIN = 60
AUTH_FAILURES_BURST = 5


@pytest.fixture(scope="module")
def limited_api(security_stack: PrivateStack) -> Iterator[str]:
    """A second API process on the same services, with small limits."""
    env = {
        **security_stack.env,
        "RATE_LIMIT_PER_S": str(PER_S),
        "RATE_LIMIT_BURST": str(BURST),
        "RATE_LIMIT_WRITES_PER_S": str(WRITES_PER_S),
        "RATE_LIMIT_WRITES_BURST": str(WRITES_BURST),
        "AUTH_FAILURES_PER_MIN": str(AUTH_FAILURES_PER_MIN),
        "AUTH_FAILURES_BURST": str(AUTH_FAILURES_BURST),
    }
    api: ServiceProcess | None = None
    try:
        api, base_url = start_api(env, log_dir=security_stack.log_dir / "limited")
        yield base_url
    finally:
        if api is not None:
            api.stop()


def _burst(base_url: str, headers: dict[str, str], count: int, method: str = "GET") -> list[httpx.Response]:
    path = "/v1/jobs" if method == "GET" else f"/v1/jobs/{uuid.uuid4()}/cancel"
    # An address of its own, away from any failed-key budget other tests spent from loopback.
    sent = {**headers, "X-Forwarded-For": "192.0.2.20"}
    with httpx.Client(base_url=base_url, headers=sent, timeout=30) as client:
        return [client.request(method, path) for _ in range(count)]


def test_past_the_request_rate_answers_429_with_retry_after(
    security_stack: PrivateStack, limited_api: str
) -> None:
    busy = security_stack.new_key()
    quiet = security_stack.new_key()

    answers = _burst(limited_api, busy, BURST + 15)
    other = _burst(limited_api, quiet, 3)

    statuses = Counter(response.status_code for response in answers)
    refused = [response for response in answers if response.status_code == 429]
    assert statuses[200] >= BURST and refused, statuses
    # A burst is served in full before anything is refused: no 429 comes before the BURST-th.
    assert all(response.status_code == 200 for response in answers[:BURST])
    for response in refused:
        retry_after = response.headers.get("Retry-After", "")
        assert retry_after.isdigit() and 1 <= int(retry_after) <= math.ceil(1 / PER_S) + 1, response.headers
        assert response.json()["error"]["code"] == "rate_limited"
        assert "per second" in response.json()["error"]["message"]
    assert [response.status_code for response in other] == [200, 200, 200]  # per tenant

    time.sleep(int(refused[-1].headers["Retry-After"]))
    assert _burst(limited_api, busy, 1)[0].status_code == 200


def test_writes_have_their_own_smaller_budget(security_stack: PrivateStack, limited_api: str) -> None:
    headers = security_stack.new_key()

    writes = _burst(limited_api, headers, WRITES_BURST + 3, method="POST")
    reads = _burst(limited_api, headers, 2)

    statuses = [response.status_code for response in writes]
    assert statuses[:WRITES_BURST] == [404] * WRITES_BURST  # allowed through to the route
    assert 429 in statuses[WRITES_BURST:], statuses
    refused = next(response for response in writes if response.status_code == 429)
    assert "writes" in refused.json()["error"]["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert [response.status_code for response in reads] == [200, 200]  # reads are not writes


def test_processes_share_one_bucket(security_stack: PrivateStack, limited_api: str) -> None:
    """The limit holds across processes and concurrent clients: allowed ≤ burst + rate × time."""
    headers = security_stack.new_key()
    limiter = RateLimiter.from_settings(
        load_settings(
            database_url=security_stack.settings.database_url,
            broker_url=security_stack.redis.url,
            broker_key_prefix=security_stack.settings.broker_key_prefix,
            rate_limit_per_s=PER_S,
            rate_limit_burst=BURST,
        )
    )
    tenant_id = security_stack.tenant_id(headers)
    started = time.monotonic()

    def one(index: int) -> int:
        # Half the calls through the API process, half through a limiter in this process.
        if index % 2:
            try:
                limiter.check(tenant_id=tenant_id, write=False)
                return 200
            except TooManyRequestsError:
                return 429
        with httpx.Client(base_url=limited_api, headers=headers, timeout=30) as client:
            return client.get("/v1/jobs", headers={"X-Forwarded-For": "192.0.2.20"}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(one, range(60)))
    elapsed = time.monotonic() - started

    allowed = statuses.count(200)
    assert statuses.count(429) > 0
    assert allowed <= BURST + math.ceil(PER_S * elapsed) + 1, (allowed, elapsed)


def test_limiter_stands_aside_when_redis_is_down(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = RedisServer(tmp_path_factory.mktemp("limiter-redis")).start()
    settings = load_settings(broker_url=server.url, rate_limit_per_s=1, rate_limit_burst=1)
    limiter = RateLimiter.from_settings(settings)
    tenant = uuid.uuid4()
    limiter.check(tenant_id=tenant, write=False)
    with pytest.raises(TooManyRequestsError):
        limiter.check(tenant_id=tenant, write=False)
    server.stop()

    started = time.monotonic()
    for _ in range(20):  # no error, and no connect timeout on every call either
        limiter.check(tenant_id=tenant, write=False)
    assert time.monotonic() - started < 2.0


def _wrong_key() -> dict[str, str]:
    return {"Authorization": f"Bearer dfs_{secrets.token_hex(4)}_{secrets.token_urlsafe(9)}"}


def test_failed_keys_are_limited_per_address(security_stack: PrivateStack, limited_api: str) -> None:
    good = security_stack.new_key()
    # The API trusts X-Forwarded-For from loopback (a proxy's place), so one test client can
    # speak for several addresses.
    guesser = {"X-Forwarded-For": "203.0.113.9"}
    bystander = {"X-Forwarded-For": "198.51.100.4"}
    with httpx.Client(base_url=limited_api, timeout=30) as client:
        guesses = [
            client.get("/v1/jobs", headers={**guesser, **_wrong_key()})
            for _ in range(AUTH_FAILURES_BURST + 3)
        ]
        statuses = [response.status_code for response in guesses]
        assert statuses == [401] * AUTH_FAILURES_BURST + [429] * 3, statuses
        refused = guesses[-1]
        assert refused.json()["error"]["code"] == "too_many_auth_failures"
        retry_after = refused.headers.get("Retry-After", "")
        assert retry_after.isdigit() and 1 <= int(retry_after) <= 60 // AUTH_FAILURES_PER_MIN + 1
        assert "WWW-Authenticate" not in refused.headers

        # A valid key from the same address (a colleague behind the same NAT, or the same client
        # once its key is fixed) is served, reads and writes alike; requests without one are not.
        assert client.get("/v1/jobs", headers={**guesser, **good}).status_code == 200
        reserved = client.post("/v1/uploads", headers={**guesser, **good}, json={"size_bytes": 10})
        assert reserved.status_code == 201, reserved.text
        assert client.get("/v1/jobs", headers=guesser).status_code == 429
        assert client.get("/v1/jobs", headers={**guesser, **_wrong_key()}).status_code == 429
        assert client.get("/healthz", headers=guesser).status_code == 200  # public routes stay open
        # Other addresses are not slowed, with a right key or a wrong one.
        assert client.get("/v1/jobs", headers={**bystander, **good}).status_code == 200
        assert client.get("/v1/jobs", headers={**bystander, **_wrong_key()}).status_code == 401

        time.sleep(int(retry_after) + 0.2)
        assert client.get("/v1/jobs", headers={**guesser, **_wrong_key()}).status_code == 401


def test_requests_with_a_valid_key_spend_no_failure_budget(
    security_stack: PrivateStack, limited_api: str
) -> None:
    good = security_stack.new_key()
    address = {"X-Forwarded-For": "203.0.113.77"}
    with httpx.Client(base_url=limited_api, timeout=30) as client:
        served = [client.get("/v1/jobs", headers={**address, **good}).status_code for _ in range(BURST)]
        assert served == [200] * BURST  # twice the failure budget, all served
        failures = [
            client.get("/v1/jobs", headers={**address, **_wrong_key()}).status_code
            for _ in range(AUTH_FAILURES_BURST)
        ]
        assert failures == [401] * AUTH_FAILURES_BURST  # the whole budget was still there
        assert client.get("/v1/jobs", headers={**address, **_wrong_key()}).status_code == 429
