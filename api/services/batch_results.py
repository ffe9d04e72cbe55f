"""A batch's results as a stream: every item in order, one CSV row or JSON line each.

Rows are read a page at a time, so a batch of any size streams in constant memory.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select

from core import verdicts
from core.config import Settings
from core.db import get_session_factory
from core.models import Job, Video

__all__ = ["RESULT_COLUMNS", "csv_cell", "json_default", "stream_results"]

RESULT_COLUMNS = (
    "index",
    "job_id",
    "external_id",
    "source",
    "filename",
    "media_type",
    "status",
    "verdict",
    "verdict_label",
    "score",
    "threshold",
    "error_code",
    "error_message",
    "model_version",
    "created_at",
    "started_at",
    "finished_at",
)
_RESULTS_PAGE = 1000
# Spreadsheet programs run cells that start with these as formulas.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def encode_records(records: list[dict[str, Any]], fmt: str) -> bytes:
    """One page of an export: CSV rows (cells made safe for spreadsheets) or JSON lines."""
    chunk = io.StringIO()
    if fmt == "csv":
        writer = csv.writer(chunk, lineterminator="\r\n")
        for record in records:
            writer.writerow([csv_cell(value) for value in record.values()])
    else:
        for record in records:
            chunk.write(json.dumps(record, default=json_default, ensure_ascii=False))
            chunk.write("\n")
    return chunk.getvalue().encode()


def csv_cell(value: Any) -> str:
    """A CSV cell: empty for None, ISO 8601 UTC for times, text a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_PREFIXES):
        return "'" + text
    return text


def _record(row: Any) -> dict[str, Any]:
    return {
        "index": row.batch_index,
        "job_id": str(row.id),
        "external_id": row.external_id,
        "source": row.source_uri,
        "filename": row.filename,
        "media_type": row.media_type,
        "status": row.status,
        "verdict": row.verdict,
        "verdict_label": verdicts.label(row.verdict),
        "score": row.score,
        "threshold": row.threshold,
        "error_code": row.error_code,
        "error_message": row.error_message,
        "model_version": row.model_version,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


def stream_results(
    settings: Settings, *, tenant_id: uuid.UUID, batch_id: uuid.UUID, fmt: Literal["csv", "jsonl"]
) -> Iterator[bytes]:
    """The batch's items in order, one CSV row or JSON line each, read a page at a time (a batch
    of any size streams in constant memory). Opens its own sessions: it runs after the request's
    dependencies have closed theirs."""
    factory = get_session_factory(settings)
    if fmt == "csv":
        header = io.StringIO()
        csv.writer(header, lineterminator="\r\n").writerow(RESULT_COLUMNS)
        yield header.getvalue().encode()
    after = -1
    while True:
        with factory() as session:
            rows = session.execute(
                select(
                    Job.batch_index,
                    Job.id,
                    Job.external_id,
                    Video.source_uri,
                    Video.filename,
                    Job.media_type,
                    Job.status,
                    Job.verdict,
                    Job.score,
                    Job.threshold,
                    Job.error_code,
                    Job.error_message,
                    Job.model_version,
                    Job.created_at,
                    Job.started_at,
                    Job.finished_at,
                )
                .join(Video, Video.id == Job.video_id)
                .where(Job.batch_id == batch_id, Job.tenant_id == tenant_id, Job.batch_index > after)
                .order_by(Job.batch_index)
                .limit(_RESULTS_PAGE)
            ).all()
        if not rows:
            return
        yield encode_records([_record(row) for row in rows], fmt)
        after = rows[-1].batch_index


def json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)
