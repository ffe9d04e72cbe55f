"""The API in-process (FastAPI's TestClient) against real PostgreSQL and Redis; no worker runs.

Videos are stored in a temporary directory and jobs stay queued. Two setups: ``client`` with the
API's defaults, and ``hooks_client`` with the production default of refusing private receivers
and a small limit on jobs in flight.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.config import Settings, load_settings
from core.db import get_session_factory
from core.keys import create_api_key
from tests.utils.platform import REDIS_URL, clear_broker_keys, fresh_database, make_small_video

MAX_UPLOAD_BYTES = 256 * 1024
IN_FLIGHT_LIMIT = 6


@pytest.fixture(scope="session")
def api_database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def api_settings(api_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    prefix = f"dfs-test-api-{secrets.token_hex(4)}:"
    storage = tmp_path_factory.mktemp("api-storage")
    settings = load_settings(
        environment="test",
        database_url=api_database_url,
        broker_url=REDIS_URL,
        broker_key_prefix=prefix,
        storage_url=storage.as_uri(),
        work_dir=tmp_path_factory.mktemp("api-work"),
        max_upload_bytes=MAX_UPLOAD_BYTES,
        page_size_max=100,
        source_buckets="client-videos",
    )
    yield settings
    clear_broker_keys(prefix)


@pytest.fixture(scope="session")
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


def _key_maker(settings: Settings) -> Callable[..., dict[str, str]]:
    def make(tenant: str | None = None, *, admin: bool = False) -> dict[str, str]:
        with get_session_factory(settings)() as session:
            created = create_api_key(
                session, tenant_name=tenant or f"tenant-{secrets.token_hex(4)}", admin=admin
            )
        return {"Authorization": f"Bearer {created.key}"}

    return make


@pytest.fixture()
def make_key(api_settings: Settings) -> Callable[..., dict[str, str]]:
    """Authorization headers for a new key of a new (or named) tenant."""
    return _key_maker(api_settings)


@pytest.fixture(scope="session")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_small_video(tmp_path_factory.mktemp("media") / "small.mp4").read_bytes()


@pytest.fixture()
def storage_dir(api_settings: Settings) -> Path:
    return api_settings.storage_dir


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
def new_key(hooks_api_settings: Settings) -> Callable[..., dict[str, str]]:
    """``make_key`` for ``hooks_client``."""
    return _key_maker(hooks_api_settings)
