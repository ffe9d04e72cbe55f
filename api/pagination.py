"""Opaque cursors for keyset pagination: the sort key of the last item, base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from core.config import Settings
from core.errors import InvalidRequestError

__all__ = ["decode_cursor", "encode_cursor", "page_limit"]


def encode_cursor(*values: Any) -> str:
    raw = json.dumps(list(values), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        values = None
    if not isinstance(values, list) or len(values) != arity:
        raise InvalidRequestError("cursor is not one this API returned", code="invalid_cursor")
    return values


def page_limit(limit: int | None, settings: Settings) -> int:
    if limit is None:
        return settings.page_size_default
    if not 1 <= limit <= settings.page_size_max:
        raise InvalidRequestError(
            f"limit must be between 1 and {settings.page_size_max}", code="invalid_limit"
        )
    return limit
