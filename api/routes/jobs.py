"""/v1/jobs: submit a video, follow the job, read its results, cancel or delete it."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.body import receive_json_body, receive_multipart
from api.deps import CurrentKey, QueueDep, SessionDep, SettingsDep, StorageDep
from api.errors import error_responses
from api.pagination import page_limit
from api.schemas.jobs import (
    FramePage,
    FramePublic,
    JobCreate,
    JobOptions,
    JobPage,
    JobPublic,
    SegmentPage,
    SegmentPublic,
    TrackPage,
    TrackPublic,
)
from api.services import jobs as service
from api.services.limits import ensure_in_flight_capacity
from core.config import Settings
from core.errors import InvalidRequestError, UnsupportedMediaTypeError
from core.logs import log_event
from core.media import content_type_for
from core.models import Job
from core.states import JobStatus
from core.storage import ObjectStore, video_key

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

FORM_FIELDS = ("callback_url", "external_id", "sample_fps", "segment_seconds")
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="repeat a request safely: the same key and body return the same job",
    ),
]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]
Limit = Annotated[int | None, Query(description="items per page (default 50)")]

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


def _body_errors(exc: ValidationError) -> RequestValidationError:
    errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
    return RequestValidationError(errors)


async def _delete_quietly(storage: ObjectStore, key: str) -> None:
    try:
        await run_in_threadpool(storage.delete, key)
    except Exception as exc:  # best effort; an orphan object is logged, not fatal
        log_event(log, "job.upload.cleanup_failed", level=logging.WARNING, key=key, error=str(exc)[:300])


def _precheck_capacity(session: Session, *, tenant_id: uuid.UUID, settings: Settings) -> None:
    try:
        ensure_in_flight_capacity(session, tenant_id=tenant_id, adding=1, settings=settings, lock=False)
    finally:
        session.rollback()  # no transaction stays open during the upload


async def _create_from_multipart(
    request: Request,
    *,
    tenant_id: uuid.UUID,
    session: Session,
    settings: Settings,
    storage: ObjectStore,
    idempotency_key: str | None,
) -> tuple[Job, bool]:
    if idempotency_key is None:
        # Refuse before the upload rather than after it; create_job checks again under a lock.
        await run_in_threadpool(lambda: _precheck_capacity(session, tenant_id=tenant_id, settings=settings))
    video_id = uuid.uuid4()
    key = video_key(tenant_id=tenant_id, video_id=video_id)
    form = await receive_multipart(
        request,
        open_writer=lambda container: storage.open_writer(key, content_type=content_type_for(container)),
        max_bytes=settings.max_upload_bytes,
        allowed_containers=settings.allowed_containers,
        allowed_fields=FORM_FIELDS,
    )
    if form.file is None:
        raise InvalidRequestError("send the video in a multipart field named 'file'", code="missing_file")
    received = form.file
    try:
        try:
            options = JobOptions.model_validate(form.fields)
        except ValidationError as exc:
            raise _body_errors(exc) from exc
        digest = service.request_hash(
            {
                "kind": "multipart",
                "options": options.model_dump(exclude_none=True),
                "file_sha256": received.sha256,
                "filename": received.filename,
            }
        )
        draft = service.VideoDraft(
            video_id=video_id,
            owned=True,
            storage_key=key,
            source_uri=None,
            filename=received.filename,
            size_bytes=received.size,
            sha256=received.sha256,
            container=received.container,
        )
        job, created = await run_in_threadpool(
            lambda: service.create_job(
                session,
                tenant_id=tenant_id,
                draft=draft,
                options=options,
                settings=settings,
                idempotency_key=idempotency_key,
                request_digest=digest,
            )
        )
    except BaseException:
        await _delete_quietly(storage, key)
        raise
    if not created:  # a replay: the first request's copy is the one kept
        await _delete_quietly(storage, key)
    return job, created


async def _create_from_json(
    request: Request,
    *,
    tenant_id: uuid.UUID,
    session: Session,
    settings: Settings,
    storage: ObjectStore,
    idempotency_key: str | None,
) -> tuple[Job, bool]:
    body = await receive_json_body(request, max_bytes=settings.json_body_max_bytes)
    try:
        payload = JobCreate.model_validate_json(body)
    except ValidationError as exc:
        raise _body_errors(exc) from exc
    digest = service.request_hash({"kind": "json", **payload.model_dump(mode="json", exclude_none=True)})
    replay = await run_in_threadpool(
        lambda: service.find_replay(
            session, tenant_id=tenant_id, idempotency_key=idempotency_key, request_digest=digest
        )
    )
    if replay is not None:
        return replay, False
    # Options are checked before storage is touched.
    service.resolve_options(payload, settings)
    if payload.source is not None:
        source = payload.source
        draft = await run_in_threadpool(lambda: service.resolve_source(source=source, settings=settings))
    else:
        assert payload.upload_id is not None
        upload_id = payload.upload_id
        draft = await run_in_threadpool(
            lambda: service.resolve_upload(
                session, tenant_id=tenant_id, upload_id=upload_id, storage=storage, settings=settings
            )
        )
    return await run_in_threadpool(
        lambda: service.create_job(
            session,
            tenant_id=tenant_id,
            draft=draft,
            options=payload,
            settings=settings,
            idempotency_key=idempotency_key,
            request_digest=digest,
            upload_id=payload.upload_id,
        )
    )


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
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    arguments: dict[str, Any] = {
        "tenant_id": key.tenant_id,
        "session": session,
        "settings": settings,
        "storage": storage,
        "idempotency_key": idempotency_key,
    }
    if media_type == "multipart/form-data":
        job, created = await _create_from_multipart(request, **arguments)
    elif media_type == "application/json" or media_type.endswith("+json"):
        job, created = await _create_from_json(request, **arguments)
    else:
        raise UnsupportedMediaTypeError(
            "send multipart/form-data with a 'file' field, or application/json with 'source' or 'upload_id'",
            code="unsupported_content_type",
        )
    if created:
        await run_in_threadpool(lambda: service.enqueue_job(session, celery, job=job, settings=settings))
    else:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobPublic.from_job(job)


@router.get(
    "", response_model=JobPage, summary="List jobs, newest first", responses=error_responses(401, 422)
)
def list_jobs(
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    status: JobStatus | None = None,
    external_id: Annotated[str | None, Query(max_length=255)] = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> JobPage:
    rows, next_cursor = service.list_jobs(
        session,
        tenant_id=key.tenant_id,
        status=status,
        cursor=cursor,
        limit=page_limit(limit, settings),
        external_id=external_id,
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
    settings: SettingsDep,
    cursor: Cursor = None,
    limit: Limit = None,
) -> SegmentPage:
    rows, next_cursor = service.list_segments(
        session, tenant_id=key.tenant_id, job_id=job_id, cursor=cursor, limit=page_limit(limit, settings)
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
    settings: SettingsDep,
    cursor: Cursor = None,
    limit: Limit = None,
) -> FramePage:
    rows, next_cursor = service.list_frames(
        session, tenant_id=key.tenant_id, job_id=job_id, cursor=cursor, limit=page_limit(limit, settings)
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
    settings: SettingsDep,
    cursor: Cursor = None,
    limit: Limit = None,
) -> TrackPage:
    rows, next_cursor = service.list_tracks(
        session, tenant_id=key.tenant_id, job_id=job_id, cursor=cursor, limit=page_limit(limit, settings)
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
