"""Schemathesis hooks for the fuzz test: JSON Lines manifests as text, and one ast.parse at a time.

Hypothesis describes the strategies schemathesis filters by parsing their source with ``ast.parse``.
On CPython 3.11 the AST converter counts its recursion depth per interpreter, not per thread, so two
of schemathesis' worker threads parsing at once can fail with "SystemError: AST constructor
recursion depth mismatch" (python/cpython#106905): a crash of the fuzzer, not a finding about the
API. Parsing under a lock keeps the workers apart there and nowhere else.
"""

from __future__ import annotations

import ast
import threading
from typing import Any

import schemathesis

__all__: list[str] = []

schemathesis.serializer.alias("application/x-ndjson", "text/plain")

_parse = ast.parse
_parsing = threading.Lock()


def _parse_one_at_a_time(*args: Any, **kwargs: Any) -> Any:
    with _parsing:
        return _parse(*args, **kwargs)


ast.parse = _parse_one_at_a_time
