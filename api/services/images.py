"""Images sent inline: the ``image_base64`` of a JSON body decoded, checked and stored like an upload.

For clients that cannot send multipart. The decoded size is capped (``MAX_IMAGE_BASE64_BYTES``);
the format is sniffed from the decoded bytes, as an upload's would be.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy.orm import Session

from api.services.jobs import get_job
from api.services.sources import VideoDraft
from core.config import Settings
from core.errors import (
    InvalidRequestError,
    NotFoundError,
    ObjectNotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from core.media import IMAGE_FORMATS, SNIFF_BYTES, content_type_for, image_is_animated, sniff_image
from core.storage import ObjectReader, ObjectStore, get_source_store, parse_s3_uri, video_key

__all__ = [
    "SHOWN_IMAGE_CHUNK_BYTES",
    "StoredPicture",
    "decode_image_base64",
    "json_body_limit",
    "open_job_image",
    "store_image",
]

# "data:image/png;base64," before the payload, as browsers write it.
_DATA_URL = re.compile(r"^data:[^,]{0,200};base64,", re.IGNORECASE)
# Room for the JSON around the base64 text (the other fields are small).
_JSON_AROUND_BYTES = 64 * 1024
# GET /v1/jobs/{id}/image passes the picture on from storage this much at a time: a request holds
# one piece in memory, whatever the picture's size (each used to hold the whole file).
SHOWN_IMAGE_CHUNK_BYTES = 256 * 1024


def json_body_limit(settings: Settings) -> int:
    """The largest JSON body POST /v1/jobs reads: room for the largest inline image."""
    return max(settings.json_body_max_bytes, settings.max_image_base64_bytes * 4 // 3 + _JSON_AROUND_BYTES)


def decode_image_base64(text: str, *, settings: Settings) -> tuple[bytes, str]:
    """(the image's bytes, its format). Typed errors: ``invalid_base64`` (422), ``empty_file``
    (422), ``image_too_large`` (413), ``unsupported_format`` and ``animated_image`` (415)."""
    limit = settings.max_image_base64_bytes
    payload = "".join(_DATA_URL.sub("", text.strip(), count=1).split())
    if len(payload) // 4 * 3 > limit + 3:  # refused before decoding anything
        raise PayloadTooLargeError(
            f"image_base64 decodes to more than the {limit} byte limit of inline images "
            "(send larger images as multipart/form-data)",
            code="image_too_large",
        )
    try:
        alphabet = b"-_" if ("-" in payload or "_" in payload) else None
        data = base64.b64decode(payload.encode("ascii"), altchars=alphabet, validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise InvalidRequestError(f"image_base64 is not valid base64 ({exc})", code="invalid_base64") from exc
    if not data:
        raise InvalidRequestError("image_base64 is empty", code="empty_file")
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"image_base64 decodes to {len(data)} bytes, past the {limit} byte limit of inline images",
            code="image_too_large",
        )
    head = data[:SNIFF_BYTES]
    fmt = sniff_image(head)
    accepted = [name for name in IMAGE_FORMATS if name in settings.allowed_containers]
    if fmt is None or fmt not in accepted:
        raise UnsupportedMediaTypeError(
            f"image_base64 must hold an image in one of these formats: {', '.join(accepted) or 'none'}",
            code="unsupported_format",
        )
    if image_is_animated(head):
        raise UnsupportedMediaTypeError(
            f"image_base64 holds an animated {fmt}; send the animation as a video (MP4, WebM)",
            code="animated_image",
        )
    return data, fmt


def store_image(storage: ObjectStore, *, tenant_id: uuid.UUID, data: bytes, fmt: str) -> VideoDraft:
    """Puts the decoded image where an uploaded one would go; the draft of its job's input."""
    video_id = uuid.uuid4()
    key = video_key(tenant_id=tenant_id, video_id=video_id)
    storage.put_bytes(key, data, content_type=content_type_for(fmt))
    return VideoDraft(
        video_id=video_id,
        owned=True,
        storage_key=key,
        source_uri=None,
        filename=None,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        container=fmt,
    )


@dataclass
class StoredPicture:
    """An image job's picture, opened in storage: its first piece already read (it says the
    format), the rest read as it is sent."""

    reader: ObjectReader
    first: bytes
    media_type: str

    @property
    def size(self) -> int:
        return self.reader.size

    def chunks(self) -> Iterator[bytes]:
        """The picture's bytes in pieces of SHOWN_IMAGE_CHUNK_BYTES at most; closes the reader
        when done, or when the generator is dropped (a client that went away)."""
        with self.reader as reader:
            yield self.first
            while chunk := reader.read(SHOWN_IMAGE_CHUNK_BYTES):
                yield chunk


def open_job_image(
    session: Session, storage: ObjectStore, *, tenant_id: uuid.UUID, job_id: str, settings: Settings
) -> StoredPicture:
    """The picture an image job analysed, opened for streaming, for drawing its faces over it."""
    job = get_job(session, tenant_id=tenant_id, job_id=job_id)
    video = job.video
    not_an_image = NotFoundError(
        "this job has no picture to show (it is a video, or a one-frame video)", code="not_an_image"
    )
    if job.media_type != "image" or (video.container is not None and video.container not in IMAGE_FORMATS):
        raise not_an_image
    if video.storage_key is not None:
        store, key = storage, video.storage_key
    elif video.source_uri is not None and video.source_uri.startswith("s3://"):
        bucket, key = parse_s3_uri(video.source_uri)
        store = get_source_store(settings, bucket)
    else:
        raise NotFoundError("the picture was fetched from a URL and is not kept", code="image_not_stored")
    try:
        reader = store.open_reader(key)
    except ObjectNotFoundError as exc:
        raise NotFoundError("the picture is no longer in storage", code="image_missing") from exc
    try:
        first = reader.read(SHOWN_IMAGE_CHUNK_BYTES)
        # Batch items are not sniffed when they are submitted: the bytes say what they are.
        fmt = sniff_image(first[:SNIFF_BYTES])
        if fmt is None:
            raise not_an_image
    except BaseException:
        reader.close()
        raise
    return StoredPicture(reader=reader, first=first, media_type=content_type_for(fmt))
