"""Filters of list routes: query strings read into typed values, or a typed 422.

A filter the route does not know is refused (``unknown_parameter``) rather than ignored: a client
asking for ``?verdict=fake`` on a route that cannot filter by it must not be handed every row as
if it were the answer. A known filter with a value outside its domain is ``invalid_filter``,
naming the parameter and what it takes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from fastapi import Request

from core.errors import InvalidRequestError
from core.states import JobStatus, Verdict

__all__ = [
    "JOB_FILTERS",
    "MEDIA_TYPES",
    "STATUSES",
    "VERDICTS",
    "JobFilters",
    "parse_job_filters",
    "reject_unknown_parameters",
]

MEDIA_TYPES = ("image", "video")
STATUSES = tuple(status.value for status in JobStatus)
VERDICTS = tuple(verdict.value for verdict in Verdict)
EXTERNAL_ID_MAX_LENGTH = 255
# The query parameters GET /v1/jobs filters by (beside ``cursor`` and ``limit``).
JOB_FILTERS = ("status", "verdict", "media_type", "created_from", "created_to", "external_id", "batch_id")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
# "…T10:00:00 01:00": a "+" of a UTC offset that was not percent-encoded arrives as a space.
_DECODED_PLUS = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")


@dataclass(frozen=True)
class JobFilters:
    """What a job list is narrowed to; an empty tuple or None places no condition."""

    statuses: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()
    media_types: tuple[str, ...] = ()
    created_from: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    external_id: str | None = None
    batch_id: uuid.UUID | None = None


def reject_unknown_parameters(request: Request, allowed: Iterable[str]) -> None:
    """InvalidRequestError (``unknown_parameter``) when the query names a parameter not in ``allowed``."""
    known = set(allowed)
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        raise InvalidRequestError(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"this route takes {', '.join(sorted(known))}",
            code="unknown_parameter",
        )


def _invalid(name: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{name}: {message}", code="invalid_filter")


def _choices(name: str, values: list[str] | None, allowed: Iterable[str]) -> tuple[str, ...]:
    """Repeated parameters and comma-separated lists alike (``?verdict=fake,inconclusive``)."""
    choices = tuple(allowed)
    picked: list[str] = []
    for raw in values or []:
        for value in (part.strip() for part in raw.split(",")):
            if value not in choices:
                shown = repr(value[:40]) if value else "an empty value"
                raise _invalid(name, f"{shown} is not one of {', '.join(choices)}")
            if value not in picked:
                picked.append(value)
    return tuple(picked)


def _instant(name: str, raw: str, *, end_of_day: bool) -> datetime:
    """An ISO 8601 date or date-time; a date alone is the day's start, or with ``end_of_day`` the
    next day's start; an instant without an offset is UTC."""
    value = _DECODED_PLUS.sub(r"\1+\2", raw.strip())
    if _DATE_ONLY.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError as exc:
            raise _invalid(name, f"{raw[:40]!r} is not a date") from exc
        start = datetime.combine(day, time(), tzinfo=UTC)
        if not end_of_day:
            return start
        try:
            return start + timedelta(days=1)
        except OverflowError as exc:  # 9999-12-31 has no next day
            raise _invalid(name, f"{raw[:40]!r} is past the last date this API takes") from exc
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _invalid(
            name, f"{raw[:40]!r} is not an ISO 8601 date (2026-12-07) or date-time (2026-12-07T09:30:00Z)"
        ) from exc
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def parse_job_filters(
    *,
    status: list[str] | None,
    verdict: list[str] | None,
    media_type: list[str] | None,
    created_from: str | None,
    created_to: str | None,
    external_id: str | None,
    batch_id: str | None,
) -> JobFilters:
    """The filters of a job list from its query values; InvalidRequestError (``invalid_filter``)
    for a value outside its domain."""
    start = _instant("created_from", created_from, end_of_day=False) if created_from is not None else None
    end: datetime | None = None
    if created_to is not None:
        # A date alone includes its whole day; a date-time is the last instant included.
        end = _instant("created_to", created_to, end_of_day=True)
        if not _DATE_ONLY.fullmatch(created_to.strip()):
            try:
                end += timedelta(microseconds=1)
            except OverflowError as exc:
                raise _invalid(
                    "created_to", f"{created_to[:40]!r} is past the last date this API takes"
                ) from exc
    if start is not None and end is not None and start >= end:
        raise _invalid("created_to", "comes before created_from")
    if external_id is not None and not 1 <= len(external_id) <= EXTERNAL_ID_MAX_LENGTH:
        raise _invalid("external_id", f"must have 1 to {EXTERNAL_ID_MAX_LENGTH} characters")
    batch: uuid.UUID | None = None
    if batch_id is not None:
        try:
            batch = uuid.UUID(batch_id.strip())
        except ValueError as exc:
            raise _invalid("batch_id", f"{batch_id[:40]!r} is not a batch id") from exc
    return JobFilters(
        statuses=_choices("status", status, STATUSES),
        verdicts=_choices("verdict", verdict, VERDICTS),
        media_types=_choices("media_type", media_type, MEDIA_TYPES),
        created_from=start,
        created_before=end,
        external_id=external_id,
        batch_id=batch,
    )
