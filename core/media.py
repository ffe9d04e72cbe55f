"""Video containers and still-image formats the service accepts: the one list, recognised from a
file's first bytes; and how many frames a second of video may be sampled at.

Torch-free and without dependencies, so the API (uploads, sources), the settings
(``ALLOWED_CONTAINERS``) and the pipeline can all share it. Images are "containers" too
(``jpeg``, ``png``, ``webp``, ``gif``): an upload is one or the other, told apart by its magic bytes.
"""

from __future__ import annotations

__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_SAMPLE_FPS",
    "IMAGE_FORMATS",
    "KNOWN_CONTAINERS",
    "MAX_SAMPLE_FPS",
    "MIN_SAMPLE_FPS",
    "SNIFF_BYTES",
    "VIDEO_CONTAINERS",
    "content_type_for",
    "image_is_animated",
    "looks_like_video",
    "media_type_for",
    "sniff_container",
    "sniff_image",
    "sniff_media",
]

# Frames analysed per second of video: the default and the range a request or the command line may
# choose within (the API's settings start from these; a deployment may narrow them).
DEFAULT_SAMPLE_FPS = 3.0
MIN_SAMPLE_FPS = 0.1
MAX_SAMPLE_FPS = 30.0

# Container name → the media type stored with the object.
CONTENT_TYPES: dict[str, str] = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "3gp": "video/3gpp",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
    "avi": "video/x-msvideo",
    "mpegts": "video/mp2t",
    "flv": "video/x-flv",
    "mpeg": "video/mpeg",
}
VIDEO_CONTAINERS: tuple[str, ...] = tuple(CONTENT_TYPES)
# Still pictures, analysed as one frame (an "image job"). GIF is here for its single-frame files;
# an animated one is refused by the worker (``animated_image``).
IMAGE_CONTENT_TYPES: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
}
IMAGE_FORMATS: tuple[str, ...] = tuple(IMAGE_CONTENT_TYPES)
CONTENT_TYPES.update(IMAGE_CONTENT_TYPES)
KNOWN_CONTAINERS: tuple[str, ...] = VIDEO_CONTAINERS + IMAGE_FORMATS
SNIFF_BYTES = 512  # enough for every signature below, including three MPEG-TS packets


def sniff_container(head: bytes) -> str | None:
    """The video container the first bytes announce, or None (images, text, audio-only RIFF…)."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return "mov"
        if brand.startswith((b"3gp", b"3g2")):
            return "3gp"
        return "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mov"  # QuickTime files written without an ftyp box
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head[:64] else "mkv"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg"
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47 and (len(head) < 377 or head[376] == 0x47):
        return "mpegts"
    return None


# Windows Media (ASF): ffmpeg reads it, the service does not accept it, yet a damaged one is still
# a damaged video rather than "not a video".
_ASF_GUID = b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"


def looks_like_video(head: bytes) -> bool:
    """True when the first bytes name a video container, accepted or not: a file that then fails
    to parse is damaged, not something else."""
    return sniff_container(head) is not None or head.startswith(_ASF_GUID)


def content_type_for(container: str) -> str:
    return CONTENT_TYPES.get(container, "application/octet-stream")


def sniff_image(head: bytes) -> str | None:
    """The still-image format the first bytes announce (``jpeg``, ``png``, ``webp``, ``gif``), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 16 and head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    return None


def sniff_media(head: bytes) -> str | None:
    """The video container or image format the first bytes announce, or None."""
    return sniff_container(head) or sniff_image(head)


def media_type_for(container: str | None) -> str:
    """``image`` for a still-image format, ``video`` for everything else."""
    return "image" if container in IMAGE_CONTENT_TYPES else "video"


def image_is_animated(head: bytes) -> bool:
    """True when the first bytes already show an animation: an extended WebP with its animation
    flag, or a PNG whose ``acTL`` chunk (APNG) comes before the first bytes end. GIF says so only
    further in; the worker counts its frames."""
    if len(head) >= 21 and head.startswith(b"RIFF") and head[8:16] == b"WEBPVP8X":
        return bool(head[20] & 0x02)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        position = 8
        while position + 8 <= len(head):
            length = int.from_bytes(head[position : position + 4], "big")
            kind = head[position + 4 : position + 8]
            if kind == b"acTL":
                return True
            if kind == b"IDAT":
                return False
            position += 12 + length
    return False
