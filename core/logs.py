"""Structured logs: events named ``job.stage.outcome`` with keyword context, one JSON object per line.

``log_context(job_id=…, segment=…)`` binds fields for the current task or request; every line
logged inside it carries them.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

__all__ = ["configure_logging", "log_context", "log_event"]

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "deepfakestream_log_context", default=None
)
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """``log_event(log, "job.probe.failed", job_id=…, code=…)``: the event is the message;
    ``exc_info=`` attaches a traceback."""
    exc_info = fields.pop("exc_info", None)
    logger.log(
        level,
        event,
        extra={"event_fields": {**(_context.get() or {}), **fields}},
        exc_info=exc_info,
        stacklevel=2,
    )


def _install_context_capture() -> None:
    """Records take the bound context when they are made, not when a handler formats them."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_captures_log_context", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        record._log_context = _context.get()
        return record

    factory._captures_log_context = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = dict(getattr(record, "_log_context", None) or {})
    fields.update(getattr(record, "event_fields", {}) or {})
    for key, value in record.__dict__.items():
        if key not in _RESERVED and key != "event_fields" and not key.startswith("_"):
            fields.setdefault(key, value)
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = _fields(record)
        if fields:
            base += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return base


def configure_logging(*, level: str = "INFO", json_lines: bool = True) -> None:
    """Idempotent: replaces the root handler so API and workers log the same way."""
    # The real stderr: Celery swaps sys.stderr for a proxy that feeds the logging system, which
    # would loop back into this handler.
    handler = logging.StreamHandler(sys.__stderr__ or sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    _install_context_capture()
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Noisy libraries stay at warnings unless debugging. httpx and httpcore log every request's
    # full URL at INFO: webhook and source URLs may carry their owners' tokens.
    for name in ("botocore", "boto3", "urllib3", "s3transfer", "kombu", "amqp", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING if level != "DEBUG" else logging.DEBUG)
