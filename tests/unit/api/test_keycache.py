"""The API process's cache of live keys: kept for its TTL, unknown keys never kept, bounded."""

from __future__ import annotations

import uuid

from api.keycache import KeyCache
from core.models import ApiKey


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _key() -> ApiKey:
    return ApiKey(id=uuid.uuid4(), tenant_id=uuid.uuid4(), prefix="dfs_abcdefgh", key_hash="x")


def test_get_or_load_reads_a_live_key_once_per_ttl() -> None:
    clock, record, loads = _Clock(), _key(), []
    cache = KeyCache(ttl_s=2.0, clock=clock)

    def load(key: str) -> ApiKey | None:
        loads.append(key)
        return record

    assert cache.get_or_load("dfs_one", load) is record
    clock.now += 1.9
    assert cache.get_or_load("dfs_one", load) is record
    assert loads == ["dfs_one"]
    clock.now += 0.2
    assert cache.get_or_load("dfs_one", load) is record
    assert loads == ["dfs_one", "dfs_one"]


def test_get_or_load_never_keeps_an_unknown_key() -> None:
    loads: list[str] = []
    cache = KeyCache(ttl_s=60.0, clock=_Clock())

    def load(key: str) -> ApiKey | None:
        loads.append(key)
        return None

    assert cache.get_or_load("dfs_guess", load) is None
    assert cache.get_or_load("dfs_guess", load) is None
    assert loads == ["dfs_guess", "dfs_guess"]
    assert len(cache) == 0


def test_get_or_load_with_zero_ttl_reads_every_time() -> None:
    loads: list[str] = []
    cache = KeyCache(ttl_s=0.0, clock=_Clock())
    record = _key()
    for _ in range(3):
        assert cache.get_or_load("dfs_one", lambda key: loads.append(key) or record) is record
    assert len(loads) == 3


def test_get_or_load_forgets_the_least_recently_used_key_past_the_bound() -> None:
    cache = KeyCache(ttl_s=60.0, max_keys=2, clock=_Clock())
    loads: list[str] = []

    def load(key: str) -> ApiKey | None:
        loads.append(key)
        return _key()

    cache.get_or_load("dfs_a", load)
    cache.get_or_load("dfs_b", load)
    cache.get_or_load("dfs_a", load)  # a is now the most recent
    cache.get_or_load("dfs_c", load)  # b goes
    assert len(cache) == 2
    cache.get_or_load("dfs_a", load)
    cache.get_or_load("dfs_b", load)
    assert loads == ["dfs_a", "dfs_b", "dfs_c", "dfs_b"]
