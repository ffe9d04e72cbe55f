"""/v1/jobs/{job_id}/image: the picture an image job analysed, to draw its face boxes over."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.deps import CurrentKey, SessionDep, SettingsDep, StorageDep
from api.errors import error_responses
from api.services import images as service

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "/{job_id}/image",
    response_class=StreamingResponse,
    summary="The picture of an image job",
    description=(
        "The JPEG, PNG, WebP or GIF the job analysed, as stored (its faces' boxes are in the pixels "
        "of the picture as displayed, EXIF orientation applied), streamed from storage. 404 "
        "`not_an_image` for video jobs."
    ),
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}, "image/gif": {}}},
        **error_responses(401, 404, 503),
    },
)
def job_image(
    job_id: str, key: CurrentKey, session: SessionDep, storage: StorageDep, settings: SettingsDep
) -> StreamingResponse:
    picture = service.open_job_image(
        session, storage, tenant_id=key.tenant_id, job_id=job_id, settings=settings
    )
    # The row has been read: the database connection goes back now, not after the last byte
    # reaches a slow client.
    session.close()
    # Private to the tenant; the stored picture never changes. nosniff: shown only as what it is.
    headers = {
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
        "Content-Length": str(picture.size),
    }
    return StreamingResponse(picture.chunks(), media_type=picture.media_type, headers=headers)
