"""A job's video before the job exists: an allowed ``s3://`` source, an ``https://`` URL or a
finished direct upload.

Bucket objects and uploads are checked (present, within the size limit, a video in an allowed
container) without reading more than their first bytes. An ``https://`` URL is checked as batch
items are: the address guard here, and the worker downloads it under the same guard and caps.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import unquote

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services.uploads import new_object_key
from core.config import Settings
from core.egress.guard import EgressError, check_url_statically
from core.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    ObjectChangedError,
    ObjectNotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from core.media import SNIFF_BYTES, image_is_animated, sniff_media
from core.models import Upload
from core.sources import normalize_source, source_scheme
from core.storage import ObjectStore, get_source_store, parse_s3_uri

__all__ = ["VideoDraft", "readable_https_source", "readable_source", "resolve_source", "resolve_upload"]


@dataclass(frozen=True)
class VideoDraft:
    """What the API learned about a job's input before the job exists."""

    video_id: uuid.UUID
    owned: bool
    storage_key: str | None
    source_uri: str | None
    filename: str | None
    size_bytes: int | None
    sha256: str | None
    container: str | None
    # The presigned upload's own object when the job got a copy of it: removed once the job is
    # stored (the copy is removed instead when it is not).
    superseded_key: str | None = None


def readable_source(source: str, *, settings: Settings) -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key) when the service may read it: a bucket of
    SOURCE_BUCKETS, and never the service's own objects. InvalidRequestError otherwise."""
    bucket, key = parse_s3_uri(source)
    own_prefix = f"{settings.storage_bucket}/{settings.storage_prefix}"
    if bucket not in settings.source_buckets or (
        settings.storage_url.startswith("s3://") and f"{bucket}/{key}".startswith(own_prefix)
    ):
        raise InvalidRequestError(f"the service may not read bucket {bucket!r}", code="source_not_allowed")
    return bucket, key


def readable_https_source(source: str, *, settings: Settings) -> tuple[str, str | None]:
    """An ``https://`` source → (its normalised URI, the file name its path ends in) when the
    address guard lets the service fetch it (no private or loopback address unless
    WEBHOOK_ALLOW_PRIVATE); InvalidRequestError with the guard's code otherwise."""
    try:
        parts = check_url_statically(source, allow_private=settings.webhook_allow_private, schemes=("https",))
    except EgressError as exc:
        raise InvalidRequestError(exc.message, code=exc.code) from exc
    name = unquote(parts.path.rsplit("/", 1)[-1]).replace("\\", "_")[:255]
    return normalize_source(source), name or None


def _check_head(head: bytes, size: int, *, settings: Settings, what: str) -> str:
    if size == 0:
        raise InvalidRequestError(f"{what} is empty", code="empty_file")
    if size > settings.max_upload_bytes:
        raise PayloadTooLargeError(
            f"{what} is {size} bytes, past the {settings.max_upload_bytes} byte limit", code="file_too_large"
        )
    container = sniff_media(head)
    if container is None or container not in settings.allowed_containers:
        raise UnsupportedMediaTypeError(
            f"{what} is not a video or image in a supported format "
            f"({', '.join(sorted(settings.allowed_containers))})",
            code="unsupported_format",
        )
    if image_is_animated(head):
        raise UnsupportedMediaTypeError(
            f"{what} is an animated {container}; send the animation as a video (MP4, WebM)",
            code="animated_image",
        )
    return container


def resolve_source(*, source: str, settings: Settings) -> VideoDraft:
    """Checks a source: an ``s3://bucket/key`` in an allowed bucket, present, within limits and a
    video; or an ``https://`` URL the address guard accepts (fetched and checked by the worker)."""
    scheme = source_scheme(source)
    if scheme == "https":
        uri, filename = readable_https_source(source, settings=settings)
        return VideoDraft(
            video_id=uuid.uuid4(),
            owned=False,
            storage_key=None,
            source_uri=uri,
            filename=filename,
            size_bytes=None,
            sha256=None,
            container=None,
        )
    if scheme != "s3":
        raise InvalidRequestError("source must be s3://bucket/key or an https:// URL", code="invalid_source")
    bucket, key = readable_source(source, settings=settings)
    store = get_source_store(settings, bucket)
    try:
        info = store.head(key)
        head = store.read_head_bytes(key, SNIFF_BYTES) if info.size else b""
    except ObjectNotFoundError as exc:
        raise InvalidRequestError(
            f"source {source} does not exist or is not readable", code="source_not_found"
        ) from exc
    container = _check_head(head, info.size, settings=settings, what=f"source {source}")
    return VideoDraft(
        video_id=uuid.uuid4(),
        owned=False,
        storage_key=None,
        source_uri=f"s3://{bucket}/{key}",
        filename=key.rsplit("/", 1)[-1][:255] or None,
        size_bytes=info.size,
        sha256=None,
        container=container,
    )


def resolve_upload(
    session: Session, *, tenant_id: uuid.UUID, upload_id: uuid.UUID, storage: ObjectStore, settings: Settings
) -> VideoDraft:
    """Checks a direct upload: this tenant's, unused, filled, within limits, a video."""
    upload = session.scalar(select(Upload).where(Upload.id == upload_id, Upload.tenant_id == tenant_id))
    if upload is None:
        raise NotFoundError("no upload with this id", code="upload_not_found")
    if upload.consumed_at is not None:
        raise ConflictError("this upload already belongs to a job", code="upload_consumed")
    try:
        info = storage.head(upload.storage_key)
        head = storage.read_head_bytes(upload.storage_key, SNIFF_BYTES) if info.size else b""
    except ObjectNotFoundError as exc:
        raise ConflictError(
            "nothing has been uploaded for this upload_id yet", code="upload_incomplete"
        ) from exc
    container = _check_head(head, info.size, settings=settings, what="the uploaded file")
    if upload.received_bytes is not None and info.size != upload.received_bytes:
        raise ConflictError(
            "the uploaded object is not the one its last PUT stored; send the file again",
            code="upload_changed",
        )
    if upload.received_bytes is None:
        # The bytes came through the presigned URL, which stays writable until it expires: the job
        # gets a copy of exactly the version checked above (refused if it changed since), so a
        # later PUT to that URL can never change what the job analyses. Pointing the upload at the
        # copy makes the consuming update below match it.
        copy_key = new_object_key(upload)
        try:
            storage.copy(upload.storage_key, copy_key, if_etag=info.etag)
        except (ObjectChangedError, ObjectNotFoundError) as exc:
            raise ConflictError(
                "the uploaded object changed while the job was being created; send the request again",
                code="upload_changed",
            ) from exc
        superseded_key: str | None = upload.storage_key
        upload.storage_key = copy_key
    else:
        superseded_key = None
    # The job records the exact object, size and hash it is created with: the worker checks them,
    # and a PUT still under way writes an object of its own, never this one.
    return VideoDraft(
        video_id=upload.id,
        owned=True,
        storage_key=upload.storage_key,
        source_uri=None,
        filename=upload.filename,
        size_bytes=info.size,
        sha256=upload.sha256,
        container=container,
        superseded_key=superseded_key,
    )
