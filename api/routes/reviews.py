"""Human review: a person's label for a job's verdict, the labels as a training export, and the
model's agreement with reviewers."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import CurrentKey, SessionDep, SettingsDep
from api.errors import error_responses
from api.schemas.jobs import JobPublic
from api.schemas.reviews import ReviewCreate, ReviewSummary
from api.services import reviews as service
from core.errors import ForbiddenError

__all__ = ["router"]

router = APIRouter(tags=["reviews"])

# How far back the agreement summary may look (a year and a day, like the drift windows).
SUMMARY_MAX_DAYS = 366


@router.put(
    "/v1/jobs/{job_id}/review",
    response_model=JobPublic,
    summary="Confirm or override a job's verdict",
    description=(
        "A reviewer's label (`fake`, `real` or `unsure`) and note for a succeeded job, kept beside "
        "the model's verdict with who sent it and when; the job's `review` shows it. Reviewing "
        "again replaces the label. Endpoints subscribed to `job.reviewed` are notified. 409 "
        "`job_not_reviewable` until the job has succeeded."
    ),
    responses=error_responses(401, 404, 409, 422),
    operation_id="review_job_v1_jobs__job_id__review_put",
)
def put_job_review(job_id: str, body: ReviewCreate, key: CurrentKey, session: SessionDep) -> JobPublic:
    return JobPublic.from_job(service.review_job(session, key=key, job_id=job_id, body=body))


@router.get(
    "/v1/reviews/export",
    summary="Every reviewed job's labels, streamed as CSV or JSON lines",
    description=(
        "The tenant's reviewed jobs, oldest review first, for the next training run; columns: "
        f"{', '.join(service.EXPORT_COLUMNS)}."
    ),
    responses={
        200: {"content": {"text/csv": {}, "application/x-ndjson": {}}, "description": "the labels"},
        **error_responses(401, 422),
    },
    response_class=StreamingResponse,
)
def export_reviews(
    key: CurrentKey,
    settings: SettingsDep,
    export_format: Annotated[
        Literal["csv", "jsonl"], Query(alias="format", description="csv or jsonl")
    ] = "csv",
) -> StreamingResponse:
    media_type = "text/csv; charset=utf-8" if export_format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        service.stream_reviews(settings, tenant_id=key.tenant_id, fmt=export_format),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="reviews.{export_format}"'},
    )


@router.get(
    "/v1/reviews/summary",
    response_model=ReviewSummary,
    summary="The model's agreement with reviewers, by day",
    description=(
        "Over the last `days` UTC days: the precision of the model's FAKE calls among reviewed jobs "
        "(the reviewer said fake or real), the share of verdicts reviewers overturned (both said "
        "fake or real, and differently), and every (model verdict, reviewer label) count. A job "
        "counts on the day it was last reviewed. Keys see their own tenant; admin keys may ask for "
        "every tenant (`scope=all`)."
    ),
    responses=error_responses(401, 403, 422),
    operation_id="review_summary_v1_reviews_summary_get",
)
def get_review_summary(
    key: CurrentKey,
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=SUMMARY_MAX_DAYS, description="UTC days, today included")] = 30,
    scope: Annotated[Literal["tenant", "all"], Query(description="all: every tenant (admin)")] = "tenant",
) -> ReviewSummary:
    if scope == "all" and not key.is_admin:
        raise ForbiddenError("the summary over every tenant needs an admin key", code="admin_required")
    return service.review_summary(session, tenant_id=None if scope == "all" else key.tenant_id, days=days)
