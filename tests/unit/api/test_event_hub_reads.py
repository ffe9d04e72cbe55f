"""The event hub's shared reads: one read per job and scope for the waiters an event wakes, never
shared across scopes (tenants), and a failed read is not handed on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from api.events import JobEventHub
from lifecycle.events import EventChannel

T = TypeVar("T")


def _run(scenario: Callable[[], Awaitable[T]]) -> T:
    # A thread of its own: a whole test run may already have an event loop in this one.
    async def main() -> T:
        return await scenario()

    with ThreadPoolExecutor(1) as runner:
        return runner.submit(asyncio.run, main()).result()


def _hub() -> JobEventHub:
    return JobEventHub(EventChannel(redis_url="redis://127.0.0.1:1/0", name="unused"))


class _Loads:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = asyncio.Event()

    def loader(self, answer: str) -> Callable[[], Awaitable[str]]:
        async def load() -> str:
            self.calls.append(answer)
            await self.release.wait()
            return answer

        return load


def test_waiters_woken_by_one_event_share_one_read_per_scope() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        hub, loads, job_id = _hub(), _Loads(), uuid.uuid4()
        tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
        woken_at = hub.fresh()  # as if an event had just come
        waits = [
            asyncio.create_task(hub.read_shared(job_id, tenant, not_before=woken_at, load=loads.loader(name)))
            for _ in range(50)
            for tenant, name in ((tenant_a, "a"), (tenant_b, "b"))
        ]
        await asyncio.sleep(0)
        loads.release.set()
        answers = await asyncio.gather(*waits)
        # Done reads still answer waiters of the same event (they came late to it).
        late = await hub.read_shared(job_id, tenant_a, not_before=woken_at, load=loads.loader("late"))
        return loads.calls, [*answers, late]

    calls, answers = _run(scenario)

    assert sorted(calls) == ["a", "b"]
    assert answers == ["a", "b"] * 50 + ["a"]


def test_a_read_older_than_the_event_is_not_reused() -> None:
    async def scenario() -> list[str]:
        hub, loads, job_id, tenant = _hub(), _Loads(), uuid.uuid4(), uuid.uuid4()
        loads.release.set()
        before = await hub.read_shared(job_id, tenant, not_before=hub.fresh(), load=loads.loader("before"))
        after = await hub.read_shared(job_id, tenant, not_before=hub.fresh(), load=loads.loader("after"))
        return [before, after]

    assert _run(scenario) == ["before", "after"]


def test_a_failed_read_is_not_handed_to_later_waiters() -> None:
    async def scenario() -> str:
        hub, job_id, tenant = _hub(), uuid.uuid4(), uuid.uuid4()
        woken_at = hub.fresh()

        async def fail() -> str:
            raise ConnectionError("database away")

        async def succeed() -> str:
            return "row"

        with pytest.raises(ConnectionError):
            await hub.read_shared(job_id, tenant, not_before=woken_at, load=fail)
        return await hub.read_shared(job_id, tenant, not_before=woken_at, load=succeed)

    assert _run(scenario) == "row"
