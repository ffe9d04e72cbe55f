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
        "of the picture as displayed, EXIF orientation applied). 404 `not_an_image` for video jobs."
    ),
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}, "image/gif": {}}},
        **error_responses(401, 404, 503),
    },
    operation_id="job_image_v1_jobs__job_id__image_get",
)
def get_job_image(
    job_id: str, key: CurrentKey, session: SessionDep, storage: StorageDep, settings: SettingsDep
) -> StreamingResponse:
    image = service.job_image(session, storage, tenant_id=key.tenant_id, job_id=job_id, settings=settings)
    # Streamed from storage a chunk at a time: a large picture asked for by many clients at once
    # costs the API a few chunks each, not the picture each. Private to the tenant; the stored
    # picture never changes. nosniff: shown only as what it is.
    headers = {
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
        "Content-Length": str(image.size),
    }
    return StreamingResponse(image.chunks, media_type=image.media_type, headers=headers)
