"""Human review of verdicts: record a person's label for a job, export the labels, and measure how
often the model's verdicts hold up (the online accuracy no offline number gives).

Every query is scoped to one tenant, except the agreement counts Prometheus scrapes (aggregates
with no tenant label) and the summary an admin asks of every tenant.
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from api.schemas.reviews import ReviewCell, ReviewCounts, ReviewCreate, ReviewDay, ReviewSummary
from api.services.batch_results import encode_records
from api.services.jobs import get_job
from core import metrics, verdicts
from core.config import Settings
from core.db import get_session_factory
from core.errors import ConflictError
from core.logs import log_event
from core.models import ApiKey, Job, JobReview, Video
from core.states import JobStatus
from lifecycle.deliveries import queue_review_deliveries

__all__ = [
    "EXPORT_COLUMNS",
    "agreement_counts",
    "review_job",
    "review_summary",
    "stream_reviews",
]

log = logging.getLogger(__name__)

# What a training run needs to find the input again and weigh the label against the model's call.
EXPORT_COLUMNS = (
    "job_id",
    "external_id",
    "input_sha256",
    "filename",
    "source",
    "media_type",
    "model_name",
    "model_version",
    "model_sha256",
    "score",
    "threshold",
    "model_verdict",
    "reviewer_label",
    "outcome",
    "note",
    "reviewer",
    "api_key_prefix",
    "reviewed_at",
)
_EXPORT_PAGE = 1000


def review_job(session: Session, *, key: ApiKey, job_id: str, body: ReviewCreate) -> Job:
    """Records (or replaces) the label of the tenant's succeeded job and queues its ``job.reviewed``
    webhooks in the same transaction. Commits."""
    job = get_job(session, tenant_id=key.tenant_id, job_id=job_id)
    if job.status != JobStatus.SUCCEEDED or job.verdict is None:
        raise ConflictError(
            f"the job is {job.status}; only a succeeded job has a verdict to review",
            code="job_not_reviewable",
        )
    now = datetime.now(UTC)
    values = {
        "label": body.label,
        "note": body.note or None,
        "model_verdict": job.verdict,
        "reviewer": body.reviewer,
        "api_key_id": key.id,
        "api_key_prefix": key.prefix,
        "reviewed_at": now,
    }
    session.execute(
        insert(JobReview)
        .values(job_id=job.id, tenant_id=job.tenant_id, **values)
        .on_conflict_do_update(index_elements=[JobReview.job_id], set_=values)
    )
    review = session.get_one(JobReview, job.id, populate_existing=True)
    queue_review_deliveries(session, job=job, review=review)
    session.commit()
    metrics.record_review(model_verdict=job.verdict, reviewer_label=body.label)
    log_event(
        log,
        "job.review.succeeded",
        job_id=str(job.id),
        model_verdict=job.verdict,
        label=body.label,
    )
    session.refresh(job)
    return job


def _export_record(row: Any) -> dict[str, Any]:
    return {
        "job_id": str(row.job_id),
        "external_id": row.external_id,
        "input_sha256": row.sha256,
        "filename": row.filename,
        "source": row.source_uri,
        "media_type": row.media_type,
        "model_name": row.model_name,
        "model_version": row.model_version,
        "model_sha256": row.model_sha256,
        "score": row.score,
        "threshold": row.threshold,
        "model_verdict": row.model_verdict,
        "reviewer_label": row.label,
        "outcome": verdicts.review_outcome(row.model_verdict, row.label),
        "note": row.note,
        "reviewer": row.reviewer,
        "api_key_prefix": row.api_key_prefix,
        "reviewed_at": row.reviewed_at,
    }


def stream_reviews(
    settings: Settings, *, tenant_id: uuid.UUID, fmt: Literal["csv", "jsonl"]
) -> Iterator[bytes]:
    """The tenant's reviewed jobs, oldest review first, one CSV row or JSON line each, read a page
    at a time. Opens its own sessions: it runs after the request's dependencies have closed theirs."""
    factory = get_session_factory(settings)
    if fmt == "csv":
        header = io.StringIO()
        csv.writer(header, lineterminator="\r\n").writerow(EXPORT_COLUMNS)
        yield header.getvalue().encode()
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        query = (
            select(
                JobReview.job_id,
                JobReview.label,
                JobReview.note,
                JobReview.model_verdict,
                JobReview.reviewer,
                JobReview.api_key_prefix,
                JobReview.reviewed_at,
                Job.external_id,
                Job.media_type,
                Job.model_name,
                Job.model_version,
                Job.model_sha256,
                Job.score,
                Job.threshold,
                Video.sha256,
                Video.filename,
                Video.source_uri,
            )
            .join(Job, Job.id == JobReview.job_id)
            .join(Video, Video.id == Job.video_id)
            .where(JobReview.tenant_id == tenant_id, Job.tenant_id == tenant_id)
            .order_by(JobReview.reviewed_at, JobReview.job_id)
            .limit(_EXPORT_PAGE)
        )
        if after is not None:
            query = query.where(tuple_(JobReview.reviewed_at, JobReview.job_id) > after)
        with factory() as session:
            rows = session.execute(query).all()
        if not rows:
            return
        yield encode_records([_export_record(row) for row in rows], fmt)
        after = (rows[-1].reviewed_at, rows[-1].job_id)


def _counts(cells: Iterable[tuple[str, str, int]]) -> dict[str, Any]:
    reviewed = unsure = fake_calls = confirmed = decided = overturned = 0
    for model_verdict, label, count in cells:
        reviewed += count
        unsure += count if label == "unsure" else 0
        outcome = verdicts.review_outcome(model_verdict, label)
        if outcome == "undecided":
            continue
        decided += count
        overturned += count if outcome == "overturned" else 0
        if model_verdict == "fake":
            fake_calls += count
            confirmed += count if label == "fake" else 0
    return {
        "reviewed": reviewed,
        "unsure": unsure,
        "fake_calls": fake_calls,
        "fake_calls_confirmed": confirmed,
        "precision_fake": confirmed / fake_calls if fake_calls else None,
        "decided": decided,
        "overturned": overturned,
        "share_overturned": overturned / decided if decided else None,
    }


def review_summary(
    session: Session, *, tenant_id: uuid.UUID | None, days: int, now: datetime | None = None
) -> ReviewSummary:
    """Agreement of the model with reviewers over the last ``days`` UTC days (today included), by
    day and in total; ``tenant_id`` None sums every tenant's reviews. A job counts on the day it
    was last reviewed, with its current label."""
    end = now or datetime.now(UTC)
    start = datetime.combine(end.astimezone(UTC).date() - timedelta(days=days - 1), datetime.min.time(), UTC)
    day = func.date(func.timezone("UTC", JobReview.reviewed_at))
    query = (
        select(day, JobReview.model_verdict, JobReview.label, func.count())
        .where(JobReview.reviewed_at >= start, JobReview.reviewed_at <= end)
        .group_by(day, JobReview.model_verdict, JobReview.label)
    )
    if tenant_id is not None:
        query = query.where(JobReview.tenant_id == tenant_id)
    by_day: dict[date, list[tuple[str, str, int]]] = {}
    matrix: Counter[tuple[str, str]] = Counter()
    for on, model_verdict, label, count in session.execute(query):
        by_day.setdefault(on, []).append((model_verdict, label, count))
        matrix[model_verdict, label] += count
    return ReviewSummary(
        scope="all" if tenant_id is None else "tenant",
        days=days,
        start=start,
        end=end,
        totals=ReviewCounts(**_counts((v, lbl, n) for (v, lbl), n in matrix.items())),
        by_day=[ReviewDay(day=on, **_counts(cells)) for on, cells in sorted(by_day.items())],
        matrix=[
            ReviewCell(model_verdict=v, reviewer_label=lbl, reviews=n)  # type: ignore[arg-type]
            for (v, lbl), n in sorted(matrix.items())
        ],
    )


def agreement_counts(session: Session) -> dict[tuple[str, str], int]:
    """Current reviews of every tenant by (model verdict, reviewer label), for the scrape."""
    rows = session.execute(
        select(JobReview.model_verdict, JobReview.label, func.count()).group_by(
            JobReview.model_verdict, JobReview.label
        )
    )
    return {(verdict, label): count for verdict, label, count in rows}
