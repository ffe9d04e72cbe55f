"""Images sent inline: the ``image_base64`` of a JSON body decoded, checked and stored like an upload.

For clients that cannot send multipart. The decoded size is capped (``MAX_IMAGE_BASE64_BYTES``);
the format is sniffed from the decoded bytes, as an upload's would be.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
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
from core.storage import ObjectStore, get_source_store, parse_s3_uri, video_path

__all__ = [
    "StoredImage",
    "decode_image_base64",
    "job_image",
    "json_body_limit",
    "json_body_limit_message",
    "store_image",
]

# "data:image/png;base64," before the payload, as browsers write it.
_DATA_URL = re.compile(r"^data:[^,]{0,200};base64,", re.IGNORECASE)
# Room for the JSON around the base64 text (the other fields are small).
_JSON_AROUND_BYTES = 64 * 1024


def json_body_limit(settings: Settings) -> int:
    """The largest JSON body POST /v1/jobs reads: room for the largest inline image, as base64 text
    with some slack (line breaks every 76 characters, escaped in JSON as ``\\r\\n``, add 5%; an
    encoder that escapes ``/`` 2% more), and for the other fields."""
    base64_chars = -(-settings.max_image_base64_bytes // 3) * 4
    return max(settings.json_body_max_bytes, base64_chars * 9 // 8 + _JSON_AROUND_BYTES)


def json_body_limit_message(settings: Settings) -> str:
    """What a too-large JSON body of POST /v1/jobs is told: which cap that is, and what it allows."""
    return (
        f"the JSON body of POST /v1/jobs is larger than its {json_body_limit(settings)} byte limit, which "
        f"leaves room for an image_base64 of up to {settings.max_image_base64_bytes} bytes decoded "
        "(MAX_IMAGE_BASE64_BYTES); send larger images as multipart/form-data"
    )


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
    key = video_path(tenant_id=tenant_id, video_id=video_id)
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


@dataclass(frozen=True)
class StoredImage:
    """The picture an image job analysed, opened for streaming: read as it is sent, never whole."""

    size: int
    media_type: str
    chunks: Iterator[bytes]


def job_image(
    session: Session, storage: ObjectStore, *, tenant_id: uuid.UUID, job_id: str, settings: Settings
) -> StoredImage:
    """The picture an image job analysed, for drawing its faces over it."""
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
    # Batch items are not sniffed when they are submitted: the first bytes say what they are.
    head = b""
    for chunk in reader.chunks:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            break
    fmt = sniff_image(head[:SNIFF_BYTES])
    if fmt is None:
        _close(reader.chunks)
        raise not_an_image
    return StoredImage(
        size=reader.size, media_type=content_type_for(fmt), chunks=itertools.chain([head], reader.chunks)
    )


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
