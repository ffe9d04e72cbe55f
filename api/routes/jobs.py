"""/v1/jobs: submit a video, follow the job, read its results, cancel or delete it."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from api.deps import CurrentKey, PageQuery, QueueDep, SessionDep, SettingsDep, StorageDep
from api.errors import error_responses
from api.schemas.jobs import (
    FramePage,
    FramePublic,
    JobPage,
    JobPublic,
    SegmentPage,
    SegmentPublic,
    TrackPage,
    TrackPublic,
)
from api.services import jobs as service
from api.services import submit
from core.states import JobStatus

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="repeat a request safely: the same key and body return the same job",
    ),
]

_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "callback_url": {"type": "string"},
                        "external_id": {"type": "string"},
                        "sample_fps": {"type": "number"},
                        "segment_seconds": {"type": "number"},
                    },
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/JobCreate"}},
        },
    }
}


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    summary="Submit a video",
    description=(
        "Send the video as multipart/form-data (field `file`, plus optional `callback_url`, "
        "`external_id`, `sample_fps`, `segment_seconds`), or as JSON naming an object already in "
        "an allowed bucket (`source`) or a finished direct upload (`upload_id`)."
    ),
    responses=error_responses(401, 404, 409, 413, 415, 422, 503),
    openapi_extra=_CREATE_BODY,
)
async def create_job(
    request: Request,
    response: Response,
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    celery: QueueDep,
    idempotency_key: IdempotencyKey = None,
) -> JobPublic:
    job, created = await submit.submit_job(
        request,
        celery=celery,
        tenant_id=key.tenant_id,
        session=session,
        settings=settings,
        storage=storage,
        idempotency_key=idempotency_key,
    )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobPublic.from_job(job)


@router.get(
    "", response_model=JobPage, summary="List jobs, newest first", responses=error_responses(401, 422)
)
def list_jobs(
    key: CurrentKey,
    session: SessionDep,
    page: PageQuery,
    status: JobStatus | None = None,
    external_id: Annotated[str | None, Query(max_length=255)] = None,
) -> JobPage:
    rows, next_cursor = service.list_jobs(
        session, tenant_id=key.tenant_id, status=status, page=page, external_id=external_id
    )
    return JobPage(items=[JobPublic.from_job(job) for job in rows], next_cursor=next_cursor)


@router.get(
    "/{job_id}",
    response_model=JobPublic,
    summary="A job's status and result",
    responses=error_responses(401, 404),
)
def get_job(job_id: str, key: CurrentKey, session: SessionDep) -> JobPublic:
    return JobPublic.from_job(service.get_job(session, tenant_id=key.tenant_id, job_id=job_id))


@router.get(
    "/{job_id}/segments",
    response_model=SegmentPage,
    summary="Per-segment scores",
    responses=error_responses(401, 404, 422),
)
def list_segments(
    job_id: str,
    key: CurrentKey,
    session: SessionDep,
    page: PageQuery,
) -> SegmentPage:
    rows, next_cursor = service.list_segments(
        session, tenant_id=key.tenant_id, job_id=job_id, page=page
    )
    return SegmentPage(items=[SegmentPublic.from_row(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/{job_id}/frames",
    response_model=FramePage,
    summary="Per-frame scores and face boxes",
    responses=error_responses(401, 404, 422),
)
def list_frames(
    job_id: str,
    key: CurrentKey,
    session: SessionDep,
    page: PageQuery,
) -> FramePage:
    rows, next_cursor = service.list_frames(
        session, tenant_id=key.tenant_id, job_id=job_id, page=page
    )
    return FramePage(items=[FramePublic.from_row(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/{job_id}/tracks",
    response_model=TrackPage,
    summary="Faces followed across frames",
    responses=error_responses(401, 404, 422),
)
def list_tracks(
    job_id: str,
    key: CurrentKey,
    session: SessionDep,
    page: PageQuery,
) -> TrackPage:
    rows, next_cursor = service.list_tracks(
        session, tenant_id=key.tenant_id, job_id=job_id, page=page
    )
    return TrackPage(items=[TrackPublic.from_row(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    summary="Cancel a queued or running job",
    responses=error_responses(401, 404, 409),
)
def cancel_job(job_id: str, key: CurrentKey, session: SessionDep) -> JobPublic:
    return JobPublic.from_job(service.cancel(session, tenant_id=key.tenant_id, job_id=job_id))


@router.delete(
    "/{job_id}",
    status_code=204,
    summary="Delete a job, its stored video and its results",
    responses=error_responses(401, 404, 503),
)
def delete_job(job_id: str, key: CurrentKey, session: SessionDep, storage: StorageDep) -> Response:
    service.delete_job(session, tenant_id=key.tenant_id, job_id=job_id, storage=storage)
    return Response(status_code=204)
