"""Database engines and sessions, work run once a session commits, and the upsert of redeliveries.

The upsert makes a redelivered task rewrite its rows.

One pooled engine per URL and process, built on first use.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.process_local import per_process

__all__ = [
    "AfterCommit",
    "after_commit",
    "check_database",
    "get_engine",
    "get_read_engine",
    "get_read_session_factory",
    "get_session_factory",
    "queued_after_commit",
    "upsert",
]

# Called once after a commit with the session and every item queued for it in that transaction.
AfterCommit = Callable[[Session, list[Any]], None]
_AFTER_COMMIT_INFO = "after_commit"


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
def _session_factory(engine: Engine, settings: Settings) -> sessionmaker[Session]:
    # Each session knows its settings: what it queues to run after its commit (webhook messages,
    # job events) goes to this deployment's broker.
    return sessionmaker(engine, expire_on_commit=False, info={"settings": settings})


def get_session_factory(settings: Settings) -> sessionmaker[Session]:
    return _session_factory(get_engine(settings), settings)


def after_commit(session: Session, callback: AfterCommit, *items: Any) -> None:
    """Queues ``items`` for ``callback``, which runs once the session's transaction has committed,
    with every item queued for it in that transaction (one call per callback and commit, callbacks
    in the order first queued). A rollback drops them: nothing is sent for rows never written."""
    queued: dict[AfterCommit, list[Any]] = session.info.setdefault(_AFTER_COMMIT_INFO, {})
    queued.setdefault(callback, []).extend(items)


def queued_after_commit(session: Session, callback: AfterCommit) -> int:
    """How many items wait for ``callback`` in the session's open transaction."""
    return len(session.info.get(_AFTER_COMMIT_INFO, {}).get(callback, ()))


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    queued: dict[AfterCommit, list[Any]] = session.info.pop(_AFTER_COMMIT_INFO, None) or {}
    for callback, items in queued.items():
        callback(session, items)


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT_INFO, None)


@functools.cache
def _read_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def get_read_engine(settings: Settings) -> Engine:
    """The pool of ``get_read_session_factory``: its connections stay in autocommit."""
    return _engine(settings.database_url, settings.database_pool_size, autocommit=True)


def get_read_session_factory(settings: Settings) -> sessionmaker[Session]:
    """Sessions for reads of one statement each (a key, a job's status): every statement runs on
    its own in autocommit, sparing the BEGIN and ROLLBACK round trips of a transaction, on a pool
    of its own. Never for writes: nothing runs after a commit and nothing is atomic."""
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
