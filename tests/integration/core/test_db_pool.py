"""The pool's liveness check: an idle pooled connection that PostgreSQL has dropped is replaced
before a statement meets it; one in steady use is not pinged at all."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from core.config import Settings, load_settings
from core.db import get_engine
from tests.utils.platform import fresh_database


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    with fresh_database() as url:
        yield load_settings(environment="test", database_url=url)


def _backend_pid(settings: Settings) -> int:
    with get_engine(settings).connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_idle_dead_connection_is_replaced_before_use(settings: Settings) -> None:
    first = _backend_pid(settings)
    outsider = create_engine(settings.database_url, poolclass=NullPool)
    with outsider.connect() as killer:
        assert killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar_one()
    outsider.dispose()
    time.sleep(1.2)  # idle past the ping threshold

    assert _backend_pid(settings) != first


def test_connection_in_steady_use_is_not_pinged(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = get_engine(settings)
    pings: list[object] = []
    ping = engine.dialect.do_ping

    def counted_ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted_ping)
    _backend_pid(settings)
    time.sleep(1.2)
    for _ in range(20):
        _backend_pid(settings)

    assert len(pings) == 1, "only the checkout after the idle second pings"
