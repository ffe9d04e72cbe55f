"""/v1/batches: many videos as one request at backlog priority, its progress, cancel and results."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.body import receive_json_body
from api.deps import CurrentKey, IdempotencyKey, PageQuery, QueueDep, SessionDep, SettingsDep, StorageDep
from api.errors import error_responses
from api.schemas.batches import BatchPage, BatchPublic
from api.services import batch_manifests as manifests
from api.services import batch_results as results
from api.services import batches as service
from core.errors import UnsupportedMediaTypeError

__all__ = ["router"]

router = APIRouter(prefix="/v1/batches", tags=["batches"])


ResultFormat = Annotated[Literal["csv", "jsonl"], Query(alias="format", description="csv or jsonl")]

_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/BatchCreate"}},
            "text/csv": {
                "schema": {"type": "string"},
                "example": "source,external_id\ns3://client-videos/a.mp4,a\nhttps://cdn.example.com/b.mp4,b\n",
            },
            "application/x-ndjson": {
                "schema": {"type": "string"},
                "example": '{"source": "s3://client-videos/a.mp4", "external_id": "a"}\n',
            },
        },
    }
}


@router.post(
    "",
    status_code=202,
    response_model=BatchPublic,
    summary="Submit a batch of videos",
    description=(
        "JSON `{items: [{source, external_id}], name, callback_url}`, or a manifest: CSV with a "
        "`source,external_id` header, or JSONL with one item per line, the other fields as query "
        "parameters. Sources are `s3://` objects in an allowed bucket or `https://` URLs. Items run "
        "behind interactive jobs; `callback_url` receives `batch.completed`."
    ),
    responses=error_responses(401, 409, 413, 415, 422, 429),
    openapi_extra=_CREATE_BODY,
    operation_id="create_batch_v1_batches_post",
)
async def post_batch(
    request: Request,
    response: Response,
    background: BackgroundTasks,
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    celery: QueueDep,
    idempotency_key: IdempotencyKey = None,
    name: Annotated[str | None, Query(max_length=255, description="manifest uploads only")] = None,
    callback_url: Annotated[str | None, Query(max_length=2048, description="manifest uploads only")] = None,
    sample_fps: Annotated[float | None, Query(description="manifest uploads only")] = None,
    segment_seconds: Annotated[float | None, Query(description="manifest uploads only")] = None,
) -> BatchPublic:
    kind = manifests.manifest_kind(request.headers.get("content-type", ""))
    if kind is None:
        raise UnsupportedMediaTypeError(
            "send application/json, a text/csv manifest or an application/x-ndjson manifest",
            code="unsupported_content_type",
        )
    body = await receive_json_body(request, max_bytes=settings.batch_body_max_bytes)
    query = {
        field: value
        for field, value in {
            "name": name,
            "callback_url": callback_url,
            "sample_fps": sample_fps,
            "segment_seconds": segment_seconds,
        }.items()
        if value is not None
    }
    batch_request = await run_in_threadpool(lambda: manifests.parse_manifest(body, kind=kind, query=query))
    batch, created = await run_in_threadpool(
        lambda: service.create_batch(
            session,
            tenant_id=key.tenant_id,
            request=batch_request,
            settings=settings,
            idempotency_key=idempotency_key,
            storage=storage,
        )
    )
    batch_id = batch.id
    if created:
        # After the answer: a large batch's messages take a while to send, and the reconciler
        # covers whatever a crash leaves unsent.
        background.add_task(service.enqueue_batch, settings, celery, batch_id=batch_id)
    else:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/batches/{batch_id}"
    return await run_in_threadpool(
        lambda: service.public_batch(
            service.summarize(
                session, batch=service.get_batch(session, tenant_id=key.tenant_id, batch_id=str(batch_id))
            )
        )
    )


@router.get(
    "",
    response_model=BatchPage,
    summary="List batches, newest first",
    responses=error_responses(401, 422),
    operation_id="list_batches_v1_batches_get",
)
def get_batches(
    key: CurrentKey,
    session: SessionDep,
    page: PageQuery,
) -> BatchPage:
    rows, next_cursor = service.list_batches(session, tenant_id=key.tenant_id, page=page)
    return BatchPage(
        items=[service.public_batch(service.summarize(session, batch=row)) for row in rows],
        next_cursor=next_cursor,
    )


@router.get(
    "/{batch_id}",
    response_model=BatchPublic,
    summary="A batch's progress: counts by state, verdicts, estimated completion",
    responses=error_responses(401, 404),
    operation_id="get_batch_v1_batches__batch_id__get",
)
def get_batch_by_id(batch_id: str, key: CurrentKey, session: SessionDep) -> BatchPublic:
    batch = service.get_batch(session, tenant_id=key.tenant_id, batch_id=batch_id)
    return service.public_batch(service.summarize(session, batch=batch))


@router.post(
    "/{batch_id}/cancel",
    response_model=BatchPublic,
    summary="Cancel every unfinished item of a batch",
    responses=error_responses(401, 404, 409),
    operation_id="cancel_batch_v1_batches__batch_id__cancel_post",
)
def post_batch_cancel(batch_id: str, key: CurrentKey, session: SessionDep) -> BatchPublic:
    batch = service.cancel_batch(session, tenant_id=key.tenant_id, batch_id=batch_id)
    return service.public_batch(service.summarize(session, batch=batch))


@router.get(
    "/{batch_id}/results",
    summary="Every item's result, streamed as CSV or JSON lines",
    description=f"One row per item in submission order; columns: {', '.join(results.RESULT_COLUMNS)}.",
    responses={
        200: {"content": {"text/csv": {}, "application/x-ndjson": {}}, "description": "the results"},
        **error_responses(401, 404, 422),
    },
    response_class=StreamingResponse,
)
def batch_results(
    batch_id: str,
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    result_format: ResultFormat = "jsonl",
) -> StreamingResponse:
    batch = service.get_batch(session, tenant_id=key.tenant_id, batch_id=batch_id)
    media_type = "text/csv; charset=utf-8" if result_format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        results.stream_results(settings, tenant_id=key.tenant_id, batch_id=batch.id, fmt=result_format),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="batch-{batch.id}.{result_format}"'},
    )
