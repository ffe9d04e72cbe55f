"""Direct uploads: a slot per file, filled through a presigned storage URL or through the API."""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import ConflictError, NotFoundError, PayloadTooLargeError
from core.logs import log_event
from core.models import Upload
from core.storage import ObjectStore, PresignedUpload, artifact_path, video_path

__all__ = ["create_upload", "delete_quietly", "get_open_upload", "new_object_key", "record_received"]

log = logging.getLogger(__name__)


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
    key = video_path(tenant_id=tenant_id, video_id=upload_id)
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
            # No Authorization header here: a client that lays these headers over its own would
            # send a placeholder instead of its key. ``send_api_key`` says to send the key.
            headers={"Content-Length": str(size_bytes)},
            send_api_key=True,
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


def new_object_key(upload: Upload) -> str:
    """A fresh object for one PUT through the API: a PUT never writes an object that a job, or
    another PUT, may already point at."""
    return artifact_path(
        tenant_id=upload.tenant_id, video_id=upload.id, name=f"source-{secrets.token_hex(8)}"
    )


def record_received(
    session: Session, *, tenant_id: uuid.UUID, upload_id: uuid.UUID, storage_key: str, size: int, sha256: str
) -> str:
    """Points the upload at the object a PUT just stored, unless a job consumed the upload while the
    bytes arrived (ConflictError: the caller deletes its object; the job keeps what it was created
    with). Returns the key the upload pointed at before, for the caller to delete. Commits."""
    upload = session.scalar(
        select(Upload).where(Upload.id == upload_id, Upload.tenant_id == tenant_id).with_for_update()
    )
    if upload is None:
        session.rollback()
        raise NotFoundError("no upload with this id", code="upload_not_found")
    if upload.consumed_at is not None:
        session.rollback()
        raise ConflictError(
            "a job was created from this upload while it was being sent; the job keeps the file it "
            "was created with and these bytes were discarded",
            code="upload_consumed",
        )
    previous = upload.storage_key
    upload.storage_key = storage_key
    upload.received_bytes = size
    upload.sha256 = sha256
    session.commit()
    return previous


def delete_quietly(storage: ObjectStore, key: str) -> None:
    """Best effort: an object left behind is logged, not fatal."""
    try:
        storage.delete(key)
    except Exception as exc:  # an orphan object costs storage, not correctness
        log_event(log, "upload.cleanup.failed", level=logging.WARNING, key=key, error=str(exc)[:300])
