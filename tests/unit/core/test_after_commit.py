"""Work queued with core.db.after_commit runs once the transaction commits, never after a rollback."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from core.db import after_commit, queued_after_commit

calls: list[tuple[str, list[Any]]] = []


def _first(session: Session, items: list[Any]) -> None:
    calls.append(("first", items))


def _second(session: Session, items: list[Any]) -> None:
    calls.append(("second", items))


def _session() -> Session:
    return Session(create_engine("sqlite://"))


def test_each_callback_runs_once_after_the_commit_with_its_items_in_order() -> None:
    calls.clear()
    with _session() as session, session.begin():
        session.execute(text("SELECT 1"))
        after_commit(session, _second, "a")
        after_commit(session, _first, 1, 2)
        after_commit(session, _second, "b")
        assert queued_after_commit(session, _second) == 2
        assert calls == []
    assert calls == [("second", ["a", "b"]), ("first", [1, 2])]
    assert queued_after_commit(session, _first) == 0


def test_a_rollback_drops_what_was_queued() -> None:
    calls.clear()
    with _session() as session:
        with session.begin():
            session.execute(text("SELECT 1"))
            after_commit(session, _first, "dropped")
            session.rollback()
        with session.begin():
            session.execute(text("SELECT 1"))
            after_commit(session, _first, "kept")
    assert calls == [("first", ["kept"])]
