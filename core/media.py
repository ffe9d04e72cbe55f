"""Video containers the service accepts: the one list, recognised from a file's first bytes.

Torch-free and without dependencies, so the API (uploads, sources), the settings
(``ALLOWED_CONTAINERS``) and the pipeline can all share it.
"""

from __future__ import annotations

__all__ = [
    "CONTENT_TYPES",
    "KNOWN_CONTAINERS",
    "SNIFF_BYTES",
    "content_type_for",
    "looks_like_video",
    "sniff_container",
]

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
KNOWN_CONTAINERS: tuple[str, ...] = tuple(CONTENT_TYPES)
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
