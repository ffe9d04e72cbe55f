"""Direct uploads: a slot per file, filled through a presigned storage URL or through the API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import ConflictError, NotFoundError, PayloadTooLargeError
from core.models import Upload
from core.storage import ObjectStore, PresignedUpload, video_key

__all__ = ["create_upload", "get_open_upload"]


def create_upload(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    size_bytes: int,
    filename: str | None,
    storage: ObjectStore,
    settings: Settings,
    api_upload_url: str,
) -> tuple[Upload, PresignedUpload]:
    """Reserves a storage key and signs a PUT for it. Commits.

    Storage that cannot sign URLs (a local directory) gets the API's own upload route instead.
    """
    if size_bytes > settings.max_upload_bytes:
        raise PayloadTooLargeError(
            f"{size_bytes} bytes is past the {settings.max_upload_bytes} byte upload limit",
            code="file_too_large",
        )
    upload_id = uuid.uuid4()
    key = video_key(tenant_id=tenant_id, video_id=upload_id)
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.upload_url_ttl_s)
    upload = Upload(
        id=upload_id,
        tenant_id=tenant_id,
        storage_key=key,
        filename=filename,
        declared_bytes=size_bytes,
        expires_at=expires_at,
    )
    presigned = storage.presign_upload(key, size_bytes=size_bytes, expires_s=settings.upload_url_ttl_s)
    if presigned is None:
        presigned = PresignedUpload(
            url=api_upload_url.format(upload_id=upload_id),
            method="PUT",
            headers={"Content-Length": str(size_bytes), "Authorization": "Bearer <your API key>"},
        )
    session.add(upload)
    session.commit()
    return upload, presigned


def get_open_upload(session: Session, *, tenant_id: uuid.UUID, upload_id: str) -> Upload:
    """An upload of this tenant that no job uses yet and whose URL has not expired."""
    try:
        parsed = uuid.UUID(upload_id)
    except ValueError as exc:
        raise NotFoundError("no upload with this id", code="upload_not_found") from exc
    upload = session.scalar(select(Upload).where(Upload.id == parsed, Upload.tenant_id == tenant_id))
    if upload is None:
        raise NotFoundError("no upload with this id", code="upload_not_found")
    if upload.consumed_at is not None:
        raise ConflictError("this upload already belongs to a job", code="upload_consumed")
    if upload.expires_at < datetime.now(UTC):
        raise ConflictError("this upload slot has expired; ask for a new one", code="upload_expired")
    return upload
