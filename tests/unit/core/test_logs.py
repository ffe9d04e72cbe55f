"""JSON log lines carry the event name, its fields and the bound job context."""

from __future__ import annotations

import json
import logging

from core.logs import JsonFormatter, log_context, log_event


def test_event_line_has_context_and_fields() -> None:
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("test.logs")
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with log_context(job_id="j-1", segment=3):
            log_event(logger, "job.analyze.succeeded", frames=12)
        log_event(logger, "job.outside")
    finally:
        logger.removeHandler(handler)

    inside, outside = (json.loads(JsonFormatter().format(record)) for record in records)
    assert inside["event"] == "job.analyze.succeeded"
    assert (inside["job_id"], inside["segment"], inside["frames"]) == ("j-1", 3, 12)
    assert "job_id" not in outside
