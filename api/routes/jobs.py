"""/v1/jobs: submit a video, follow the job, read its results, cancel or delete it."""

from __future__ import annotations

import functools
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import (
    CurrentKey,
    EventHubDep,
    IdempotencyKey,
    PageQuery,
    QueueDep,
    SessionDep,
    SettingsDep,
    StorageDep,
    StreamKey,
    key_is_live,
)
from api.errors import error_responses
from api.filters import (
    JOB_FILTERS,
    MEDIA_TYPES,
    STATUSES,
    VERDICTS,
    JobFilters,
    parse_job_filters,
    reject_unknown_parameters,
)
from api.schemas.jobs import (
    FramePage,
    FramePublic,
    JobPage,
    JobPublic,
    SegmentPage,
    SegmentPublic,
    StreamTokenPublic,
    TrackPage,
    TrackPublic,
)
from api.services import job_events, report, submit
from api.services import jobs as service
from core.config import WAIT_CEILING_S

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# ?wait=S: hold the answer until the job ends or S seconds pass (at most WAIT_MAX_S).
WaitQuery = Annotated[
    float | None,
    Query(
        ge=0,
        le=WAIT_CEILING_S,
        description="seconds to hold the answer until the job ends (at most WAIT_MAX_S, 30 by "
        "default); the answer is the job as it stands then, ended or not",
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
        "Send the video or image as multipart/form-data (field `file`, plus optional `callback_url`, "
        "`external_id`, `sample_fps`, `segment_seconds`), or as JSON naming an object already in "
        "an allowed bucket (`source`) or a finished direct upload (`upload_id`), or carrying a small "
        "image as `image_base64`. JPEG, PNG, WebP and GIF images (and one-frame videos) are image "
        "jobs (`media_type: image`): one frame analysed, its faces in `faces`. With `?wait=S` "
        "the answer waits until the job ends or S seconds pass."
    ),
    responses=error_responses(401, 404, 409, 413, 415, 422, 503),
    openapi_extra=_CREATE_BODY,
    # The published operationId, kept as clients generated from the schema know it.
    operation_id="create_job_v1_jobs_post",
)
async def post_job(
    request: Request,
    response: Response,
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    celery: QueueDep,
    hub: EventHubDep,
    idempotency_key: IdempotencyKey = None,
    wait: WaitQuery = None,
) -> JobPublic:
    wait_s = job_events.check_wait(wait, settings)
    tenant_id = key.tenant_id
    job, created = await submit.submit_job(
        request,
        celery=celery,
        tenant_id=tenant_id,
        session=session,
        settings=settings,
        storage=storage,
        idempotency_key=idempotency_key,
    )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    public = JobPublic.from_job(job)
    if wait_s is None:
        return public
    if session.in_transaction():
        await run_in_threadpool(session.close)  # no connection is held while waiting
    read = job_events.job_reader(settings, tenant_id=tenant_id, job_id=str(job.id))
    return await job_events.wait_for_job(hub, job_id=job.id, tenant_id=tenant_id, read=read, timeout_s=wait_s)


def _one_of(values: tuple[str, ...]) -> str:
    return f"one or more of {', '.join(values)}, repeated or comma-separated"


def _job_filters(
    request: Request,
    status: Annotated[list[str] | None, Query(description=f"jobs in this state: {_one_of(STATUSES)}")] = None,
    verdict: Annotated[
        list[str] | None,
        Query(description=f"succeeded jobs with this verdict: {_one_of(VERDICTS)}"),
    ] = None,
    media_type: Annotated[list[str] | None, Query(description=f"{_one_of(MEDIA_TYPES)}")] = None,
    created_from: Annotated[
        str | None,
        Query(
            description="jobs created at or after this ISO 8601 date (2026-12-07, from its start) or "
            "date-time (2026-12-07T09:30:00Z; without an offset, UTC)"
        ),
    ] = None,
    created_to: Annotated[
        str | None,
        Query(description="jobs created at or before this ISO 8601 date (through its end) or date-time"),
    ] = None,
    external_id: Annotated[str | None, Query(description="the client's own id given at submission")] = None,
    batch_id: Annotated[str | None, Query(description="the jobs of this batch")] = None,
) -> JobFilters:
    reject_unknown_parameters(request, (*JOB_FILTERS, "cursor", "limit"))
    return parse_job_filters(
        status=status,
        verdict=verdict,
        media_type=media_type,
        created_from=created_from,
        created_to=created_to,
        external_id=external_id,
        batch_id=batch_id,
    )


@router.get(
    "",
    response_model=JobPage,
    summary="List jobs, newest first",
    description=(
        "The tenant's jobs, newest first, in cursor pages, narrowed by any of the filters (all must "
        "hold). A query parameter the route does not take answers 422 `unknown_parameter`; a filter "
        "value outside its domain answers 422 `invalid_filter`."
    ),
    responses=error_responses(401, 422),
    operation_id="list_jobs_v1_jobs_get",
)
def get_jobs(
    key: CurrentKey,
    session: SessionDep,
    page: PageQuery,
    filters: Annotated[JobFilters, Depends(_job_filters)],
) -> JobPage:
    rows, next_cursor = service.list_jobs(session, tenant_id=key.tenant_id, filters=filters, page=page)
    return JobPage(items=[JobPublic.from_job(job) for job in rows], next_cursor=next_cursor)


@router.get(
    "/{job_id}",
    response_model=JobPublic,
    summary="A job's status and result",
    description="With `?wait=S` the answer waits until the job ends or S seconds pass.",
    responses=error_responses(401, 404, 422),
    operation_id="get_job_v1_jobs__job_id__get",
)
async def get_job_by_id(
    job_id: str,
    key: CurrentKey,
    settings: SettingsDep,
    hub: EventHubDep,
    wait: WaitQuery = None,
) -> Response:
    wait_s = job_events.check_wait(wait, settings)
    tenant_id = key.tenant_id
    read = job_events.job_reader(settings, tenant_id=tenant_id, job_id=job_id)
    if wait_s is None:
        job = await read()
    else:
        job = await job_events.wait_for_job(
            hub, job_id=job_events.parse_job_id(job_id), tenant_id=tenant_id, read=read, timeout_s=wait_s
        )
    # Serialised once, here: a returned model would be dumped, validated against the response
    # model again and encoded (the most polled route, measured in bench/api.py).
    return Response(job.model_dump_json(), media_type="application/json")


@router.get(
    "/{job_id}/events",
    summary="The job's events as they happen (Server-Sent Events)",
    description=(
        "A `text/event-stream`: `status` (the whole job, as GET /v1/jobs/{id} answers it) when "
        "its state changes, `progress` for each stored segment, `end` (the whole job) last, then "
        "the stream closes; `: heartbeat` comments while nothing happens. Each event's `id` lets "
        "a reconnecting client send `Last-Event-ID` and skip what it has seen; reconnecting after "
        "the end answers 204. Authenticate with the Authorization header, or with `?token=` from "
        "POST /v1/jobs/{id}/events/token (a browser's EventSource cannot send headers)."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the event stream"},
        204: {"description": "the job has ended and the client has its last event"},
        **error_responses(401, 404, 422),
    },
)
async def job_events_stream(
    job_id: str,
    key: StreamKey,
    settings: SettingsDep,
    hub: EventHubDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
) -> Response:
    read = job_events.job_reader(settings, tenant_id=key.tenant_id, job_id=job_id)
    first = await read()
    if job_events.stream_is_over(first, last_event_id):
        return Response(status_code=204)
    stream = job_events.stream_job_events(
        hub,
        job_id=first.id,
        tenant_id=key.tenant_id,
        read=read,
        first=first,
        last_event_id=last_event_id,
        settings=settings,
        key_is_live=functools.partial(key_is_live, settings, key.id),
    )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/{job_id}/events/token",
    status_code=201,
    response_model=StreamTokenPublic,
    summary="A short-lived token that opens this job's event stream",
    description=(
        "For clients that cannot send an Authorization header: open "
        "`GET /v1/jobs/{id}/events?token=<token>` before `expires_at`. The token opens only this "
        "job's stream, and only while the key that made it is live."
    ),
    responses=error_responses(401, 404),
)
def create_stream_token(
    job_id: str, key: CurrentKey, session: SessionDep, settings: SettingsDep
) -> StreamTokenPublic:
    job = service.get_job(session, tenant_id=key.tenant_id, job_id=job_id)
    issued = job_events.issue_stream_token(settings, key=key, job_id=job.id)
    return StreamTokenPublic(
        token=issued.token,
        expires_at=issued.expires_at,
        events_url=f"/v1/jobs/{job.id}/events?token={issued.token}",
    )


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


@router.get(
    "/{job_id}/report",
    response_class=Response,
    summary="The job's self-contained HTML report (a download)",
    description=(
        "The same one-file report as `deepfakestream analyze --report`: verdict and how it was reached, "
        "the analysis date, the input's name, size and SHA-256, the model and its caveat, the settings "
        "used, the score over time and the most suspicious faces with their heatmaps. 409 "
        "`job_not_finished` until the job has succeeded."
    ),
    responses={
        200: {"content": {"text/html": {}}, "description": "the report, as an attachment"},
        **error_responses(401, 404, 409, 503),
    },
    operation_id="job_report_v1_jobs__job_id__report_get",
)
def get_job_report(job_id: str, key: CurrentKey, session: SessionDep, storage: StorageDep) -> Response:
    job, document = report.job_report(session, storage, tenant_id=key.tenant_id, job_id=job_id)
    return Response(
        document,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{report.report_filename(job.id)}"',
            "Cache-Control": "private, no-cache",
        },
    )


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    summary="Cancel a queued or running job",
    responses=error_responses(401, 404, 409),
    operation_id="cancel_job_v1_jobs__job_id__cancel_post",
)
def post_job_cancel(job_id: str, key: CurrentKey, session: SessionDep) -> JobPublic:
    return JobPublic.from_job(service.cancel(session, tenant_id=key.tenant_id, job_id=job_id))


@router.delete(
    "/{job_id}",
    status_code=204,
    summary="Delete a job, its stored video and its results",
    responses=error_responses(401, 404, 503),
    operation_id="delete_job_v1_jobs__job_id__delete",
)
def delete_job_by_id(job_id: str, key: CurrentKey, session: SessionDep, storage: StorageDep) -> Response:
    service.delete_job(session, tenant_id=key.tenant_id, job_id=job_id, storage=storage)
    return Response(status_code=204)
