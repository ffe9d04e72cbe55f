"""The API in-process against real PostgreSQL and Redis, with the production default of refusing
private receivers and a small limit on jobs in flight. No worker runs: jobs stay queued."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.config import Settings, load_settings
from core.db import get_session_factory
from core.keys import create_api_key
from tests.utils.platform import REDIS_URL, clear_broker_keys, fresh_database, make_small_video

IN_FLIGHT_LIMIT = 6


@pytest.fixture(scope="session")
def hooks_api_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    prefix = f"dfs-test-hooks-api-{secrets.token_hex(4)}:"
    with fresh_database() as url:
        yield load_settings(
            environment="test",
            database_url=url,
            broker_url=REDIS_URL,
            broker_key_prefix=prefix,
            storage_url=tmp_path_factory.mktemp("hooks-api-storage").as_uri(),
            work_dir=tmp_path_factory.mktemp("hooks-api-work"),
            source_buckets="client-videos",
            max_jobs_in_flight_per_tenant=IN_FLIGHT_LIMIT,
            in_flight_retry_after_s=17,
            batch_max_items=8,
        )
    clear_broker_keys(prefix)


@pytest.fixture(scope="session")
def hooks_client(hooks_api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(hooks_api_settings)) as client:
        yield client


@pytest.fixture()
def new_key(hooks_api_settings: Settings) -> Callable[[], dict[str, str]]:
    def make() -> dict[str, str]:
        with get_session_factory(hooks_api_settings)() as session:
            created = create_api_key(session, tenant_name=f"tenant-{secrets.token_hex(4)}")
        return {"Authorization": f"Bearer {created.key}"}

    return make


@pytest.fixture(scope="session")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_small_video(tmp_path_factory.mktemp("hooks-media") / "small.mp4").read_bytes()
