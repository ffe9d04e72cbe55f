"""Database engines and sessions, and the upsert that makes a redelivered task rewrite its rows.

One pooled engine per URL and process, built on first use.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.events import EventChannel, publish_on_commit
from core.process_local import per_process

__all__ = [
    "check_database",
    "get_engine",
    "get_read_engine",
    "get_read_session_factory",
    "get_session_factory",
    "upsert",
]


# A connection handed back this recently is not pinged when it is taken again. A restarted
# PostgreSQL leaves dead connections in the pool, so an idle one is pinged first; one in steady
# use is not: that ping was one of a status poll's five round trips (bench/api.py). A connection
# that dies between two uses anyway fails its statement, and the pool then discards every
# connection made before the failure.
_PING_IDLE_AFTER_S = 1.0


@per_process
def _engine(url: str, pool_size: int, autocommit: bool = False) -> Engine:
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5, "application_name": "deepfakestream"},
        # Set once per connection, not per checkout: switching a shared pool's connection to
        # autocommit and back cost a status poll a fifth of its time (bench/api.py, profiled).
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    def handed_back(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def taken(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < _PING_IDLE_AFTER_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection and takes (or makes) another.
            raise DisconnectionError("the pooled connection is dead") from exc

    event.listen(engine, "connect", handed_back)  # a new connection needs no ping
    event.listen(engine, "checkin", handed_back)
    event.listen(engine, "checkout", taken)


def get_engine(settings: Settings) -> Engine:
    return _engine(settings.database_url, settings.database_pool_size)


@functools.cache
def _session_factory(engine: Engine, settings: Settings, channel: EventChannel) -> sessionmaker[Session]:
    # Each session knows its settings: what it queues to send after its commit (core.outbox)
    # goes to this deployment's broker.
    factory = sessionmaker(engine, expire_on_commit=False, info={"settings": settings})
    # Job events announced in a session go out once its transaction has committed.
    publish_on_commit(factory, channel)
    return factory


def get_session_factory(settings: Settings) -> sessionmaker[Session]:
    return _session_factory(get_engine(settings), settings, EventChannel.from_settings(settings))


@functools.cache
def _read_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def get_read_engine(settings: Settings) -> Engine:
    """The pool of ``get_read_session_factory``: its connections stay in autocommit."""
    return _engine(settings.database_url, settings.database_pool_size, autocommit=True)


def get_read_session_factory(settings: Settings) -> sessionmaker[Session]:
    """Sessions for reads of one statement each (a key, a job's status): every statement runs on
    its own in autocommit, sparing the BEGIN and ROLLBACK round trips of a transaction, on a pool
    of its own. Never for writes: nothing is published on commit and nothing is atomic."""
    return _read_session_factory(get_read_engine(settings))


def check_database(settings: Settings) -> None:
    """Raises if the database does not answer a trivial query."""
    with get_engine(settings).connect() as connection:
        connection.execute(text("SELECT 1"))


def upsert(
    session: Session,
    model: type[Any],
    rows: Sequence[Mapping[str, Any]],
    *,
    update: Iterable[str],
    constraint: str | None = None,
    index_elements: Sequence[Any] | None = None,
) -> None:
    """Inserts ``rows``; where one conflicts with a stored row (on ``constraint`` or
    ``index_elements``), its ``update`` columns replace the stored ones. No rows, no statement."""
    if not rows:
        return
    statement = insert(model).values(list(rows))
    session.execute(
        statement.on_conflict_do_update(
            constraint=constraint,
            index_elements=index_elements,
            set_={name: statement.excluded[name] for name in update},
        )
    )
