"""Schemathesis hooks for the fuzz test: JSON Lines batch manifests go on the wire as text."""

from __future__ import annotations

import schemathesis

__all__: list[str] = []

schemathesis.serializer.alias("application/x-ndjson", "text/plain")
