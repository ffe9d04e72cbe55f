"""/v1/jobs: submit a video, follow the job, read its results, cancel or delete it."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from api.deps import CurrentKey, IdempotencyKey, PageQuery, QueueDep, SessionDep, SettingsDep, StorageDep
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
        "Send the video or image as multipart/form-data (field `file`, plus optional `callback_url`, "
        "`external_id`, `sample_fps`, `segment_seconds`), or as JSON naming an object already in "
        "an allowed bucket (`source`) or a finished direct upload (`upload_id`), or carrying a small "
        "image as `image_base64`. JPEG, PNG, WebP and GIF images (and one-frame videos) are image "
        "jobs (`media_type: image`): one frame analysed, its faces in `faces`."
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


def _add_result_route(kind: str, *, page_model: type[BaseModel], public: Any, summary: str) -> None:
    """GET /v1/jobs/{job_id}/<kind>: one page of the job's segments, frames or tracks."""

    def list_results(job_id: str, key: CurrentKey, session: SessionDep, page: PageQuery) -> BaseModel:
        rows, next_cursor = service.list_results(
            session, tenant_id=key.tenant_id, job_id=job_id, kind=kind, page=page
        )
        return page_model(items=[public.from_row(row) for row in rows], next_cursor=next_cursor)

    router.add_api_route(
        f"/{{job_id}}/{kind}",
        list_results,
        methods=["GET"],
        name=f"list_{kind}",
        response_model=page_model,
        summary=summary,
        responses=error_responses(401, 404, 422),
    )


_add_result_route("segments", page_model=SegmentPage, public=SegmentPublic, summary="Per-segment scores")
_add_result_route(
    "frames", page_model=FramePage, public=FramePublic, summary="Per-frame scores and face boxes"
)
_add_result_route("tracks", page_model=TrackPage, public=TrackPublic, summary="Faces followed across frames")


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
