"""Keyset pagination for every list the API pages: one page of a query ordered by its key columns.

The ``cursor`` and ``limit`` query parameters are defined here once (routes take them as
``api.deps.PageQuery``). A cursor is the key of the page's last item, base64url-encoded JSON:
opaque to clients, and a page is found by an index seek, never an offset.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Query
from sqlalchemy import BigInteger, Select, SmallInteger, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.config import Settings
from core.errors import InvalidRequestError

__all__ = ["Cursor", "Limit", "PageRequest", "keyset_page", "page_limit"]

Row = TypeVar("Row")

Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]
Limit = Annotated[int | None, Query(description="items per page (default 50)")]


@dataclass(frozen=True)
class PageRequest:
    """The page a list request asks for: at most ``limit`` items after the one ``cursor`` names."""

    cursor: str | None
    limit: int


def _invalid_cursor() -> InvalidRequestError:
    return InvalidRequestError("cursor is not one this API returned", code="invalid_cursor")


def _encode_cursor(*values: Any) -> str:
    raw = json.dumps(list(values), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, *, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        values = None
    if not isinstance(values, list) or len(values) != arity:
        raise _invalid_cursor()
    return values


def page_limit(limit: int | None, settings: Settings) -> int:
    if limit is None:
        return settings.page_size_default
    if not 1 <= limit <= settings.page_size_max:
        raise InvalidRequestError(
            f"limit must be between 1 and {settings.page_size_max}", code="invalid_limit"
        )
    return limit


def _key_value(column: InstrumentedAttribute[Any], value: Any) -> Any:
    """A key column's value as it travels in a cursor."""
    if isinstance(value, datetime):
        # Always in UTC, whatever the database session's time zone: what a cursor may hold is then
        # one exact form, checked on the way back.
        return value.astimezone(UTC).isoformat()
    return str(value) if isinstance(value, uuid.UUID) else value


def _parse_key(column: InstrumentedAttribute[Any], raw: Any) -> Any:
    """A key column's value read back from a cursor; InvalidRequestError unless it is a value of
    the kind the page wrote (a cursor is opaque, not trusted: a forged one must not reach the
    database as a boolean, an integer past the column's range or a time it cannot hold)."""
    kind = column.type.python_type
    if kind is int:
        bits = (
            64 if isinstance(column.type, BigInteger) else 16 if isinstance(column.type, SmallInteger) else 32
        )
        # JSON's true is an int to Python; it is no key the page wrote.
        if type(raw) is not int or not -(2 ** (bits - 1)) <= raw < 2 ** (bits - 1):
            raise _invalid_cursor()
        return raw
    if not isinstance(raw, str):
        raise _invalid_cursor()
    try:
        if kind is datetime:
            written = datetime.fromisoformat(raw)
            # Only UTC was written; another offset (-23:59, which PostgreSQL refuses) or none is forged.
            if written.utcoffset() != timedelta(0):
                raise _invalid_cursor()
            return written
        return uuid.UUID(raw)
    except (ValueError, OverflowError) as exc:
        raise _invalid_cursor() from exc


def keyset_page(
    session: Session,
    query: Select[Row],
    *,
    keys: Sequence[InstrumentedAttribute[Any]],
    page: PageRequest,
    newest_first: bool = False,
) -> tuple[list[Row], str | None]:
    """One page of ``query``'s rows ordered by ``keys`` (ascending, or descending with
    ``newest_first``), and the cursor of the next page, if any."""
    cursor, limit = page.cursor, page.limit
    if cursor is not None:
        raw_values = _decode_cursor(cursor, arity=len(keys))
        after = [_parse_key(key, raw) for key, raw in zip(keys, raw_values, strict=True)]
        position = tuple_(*keys) if len(keys) > 1 else keys[0]
        bound = tuple_(*after) if len(keys) > 1 else after[0]
        query = query.where(position < bound if newest_first else position > bound)
    order = [key.desc() for key in keys] if newest_first else list(keys)
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, _encode_cursor(*(_key_value(key, getattr(last, key.key)) for key in keys))
