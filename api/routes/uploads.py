"""/v1/uploads: direct uploads of large files, straight to storage when it can sign URLs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from api.body import receive_raw_body, sanitize_filename
from api.deps import CurrentKey, SessionDep, SettingsDep, StorageDep
from api.errors import error_responses
from api.schemas.uploads import UploadCreate, UploadPublic, UploadReceived
from api.services import uploads as service
from core.media import content_type_for

__all__ = ["router"]

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])


@router.post(
    "",
    status_code=201,
    response_model=UploadPublic,
    summary="Reserve a direct upload",
    description=(
        "Answers a URL to PUT the file to (a presigned storage URL, or this API's own upload route "
        "when storage is a local directory; `send_api_key` then says to send the API key with the "
        'bytes). Then create the job with `{"upload_id": …}`.'
    ),
    responses=error_responses(401, 413, 422),
    operation_id="create_upload_v1_uploads_post",
)
def post_upload(
    body: UploadCreate,
    request: Request,
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
) -> UploadPublic:
    api_url = (
        str(request.url_for("put_upload", upload_id="{upload_id}")).replace("%7B", "{").replace("%7D", "}")
    )
    upload, presigned = service.create_upload(
        session,
        tenant_id=key.tenant_id,
        size_bytes=body.size_bytes,
        filename=sanitize_filename(body.filename),
        storage=storage,
        settings=settings,
        api_upload_url=api_url,
    )
    return UploadPublic(
        upload_id=upload.id,
        url=presigned.url,
        method="PUT",
        headers=presigned.headers,
        send_api_key=presigned.send_api_key,
        expires_at=upload.expires_at,
        max_bytes=body.size_bytes,
    )


@router.put(
    "/{upload_id}",
    name="put_upload",
    response_model=UploadReceived,
    summary="Send a reserved upload's bytes through the API",
    responses=error_responses(401, 404, 409, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def put_upload(
    upload_id: str, request: Request, key: CurrentKey, session: SessionDep, storage: StorageDep
) -> UploadReceived:
    upload = await run_in_threadpool(
        lambda: service.get_open_upload(session, tenant_id=key.tenant_id, upload_id=upload_id)
    )
    declared, filename, reserved_id = upload.declared_bytes or 0, upload.filename, upload.id
    object_key = service.new_object_key(upload)
    session.rollback()  # no transaction stays open while the bytes arrive
    received = await receive_raw_body(
        request,
        open_writer=lambda container: storage.open_writer(
            object_key, content_type=content_type_for(container)
        ),
        max_bytes=declared,
        allowed_containers=request.app.state.settings.allowed_containers,
        filename=filename,
    )
    try:
        previous = await run_in_threadpool(
            lambda: service.record_received(
                session,
                tenant_id=key.tenant_id,
                upload_id=reserved_id,
                storage_key=object_key,
                size=received.size,
                sha256=received.sha256,
            )
        )
    except BaseException:
        await run_in_threadpool(service.delete_quietly, storage, object_key)
        raise
    if previous != object_key:
        await run_in_threadpool(service.delete_quietly, storage, previous)
    return UploadReceived(upload_id=reserved_id, size_bytes=received.size, container=received.container)
