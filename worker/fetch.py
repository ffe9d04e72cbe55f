"""Local copies of job videos: the pipeline reads files, storage holds objects.

A copy is made once per job and worker machine (``WORK_DIR/jobs/<job id>/``), shared by the
segments that land there, removed when the job ends and swept when stale.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from core.config import Settings
from core.egress.client import download
from core.egress.guard import EgressError
from core.models import Video
from core.sources import source_scheme
from core.storage import ObjectStore, get_source_store, parse_s3_uri
from pipeline.errors import InputError

__all__ = [
    "SourceFetchError",
    "VideoChangedError",
    "local_video",
    "prune_stale_copies",
    "remove_job_copy",
    "verify_video",
]

STALE_AFTER_S = 6 * 3600.0
_MAX_NAME_BYTES = 180
_UNSAFE_NAME = re.compile(r"[\\/\x00-\x1f\x7f]")
_PRUNE_EVERY_S = 600.0
_last_prune = 0.0


def _job_dir(settings: Settings, job_id: uuid.UUID) -> Path:
    return settings.work_dir / "jobs" / str(job_id)


def _local_name(video: Video) -> str:
    # The pipeline's messages name the file: show the client's name, never a path. Only what a
    # file system takes: no separators or control characters, valid UTF-8, and few enough bytes
    # (255 at most, with room for the download's temporary suffix), keeping the extension.
    name = _UNSAFE_NAME.sub("_", video.filename or "").strip(". ")
    name = name.encode("utf-8", "replace").decode("utf-8")
    suffix = Path(name).suffix if len(Path(name).suffix.encode()) <= 16 else ""
    stem = name[: len(name) - len(suffix)].encode()[: _MAX_NAME_BYTES - len(suffix.encode())]
    name = (stem.decode("utf-8", "ignore") + suffix).strip(". ")
    return name or f"video.{video.container or 'bin'}"


class VideoChangedError(InputError):
    """The stored video is not the one the job was created with (its size or hash differ)."""

    code = "video_changed"


_HASH_CHUNK_BYTES = 1024 * 1024


def verify_video(path: Path, video: Video, *, check_hash: bool) -> None:
    """The file is what the job recorded: its size, and its SHA-256 when the job has one and
    ``check_hash`` (a full read: the probe does it once per job, segments check the size)."""
    size = path.stat().st_size
    if video.size_bytes is not None and size != video.size_bytes:
        raise VideoChangedError(
            f"the stored video has {size} bytes, but the job was created with {video.size_bytes}",
            code="video_changed",
        )
    if check_hash and video.sha256:
        digest = hashlib.sha256()
        with path.open("rb") as source:
            while chunk := source.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
        if digest.hexdigest() != video.sha256:
            raise VideoChangedError(
                "the stored video's SHA-256 differs from the one the job was created with",
                code="video_changed",
            )


def local_video(
    *, job_id: uuid.UUID, video: Video, storage: ObjectStore, settings: Settings, check_hash: bool = False
) -> Path:
    """A readable local file with the job's video (downloaded on first use). A video we store is
    checked against what its job recorded (``verify_video``)."""
    if video.owned and video.storage_key:
        in_place = storage.local_path(video.storage_key)
        if in_place is not None:
            verify_video(in_place, video, check_hash=check_hash)
            return in_place
    destination = _job_dir(settings, job_id) / _local_name(video)
    if destination.exists():
        with contextlib.suppress(OSError):
            os.utime(destination.parent)  # keeps the copy out of the stale sweep
        if video.owned:
            verify_video(destination, video, check_hash=check_hash)
        return destination
    prune_stale_copies(settings)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if video.owned and video.storage_key:
        storage.download(video.storage_key, destination)
        verify_video(destination, video, check_hash=check_hash)
    else:
        assert video.source_uri is not None
        scheme = source_scheme(video.source_uri)
        if scheme == "https":
            _download_https(video.source_uri, destination, settings=settings)
        elif scheme != "s3":
            raise SourceFetchError(
                f"the source must be s3://bucket/key or an https:// URL, got scheme {scheme!r}",
                code="invalid_source",
                retryable=False,
            )
        else:
            bucket, key = parse_s3_uri(video.source_uri)
            get_source_store(settings, bucket).download(key, destination)
    return destination


class SourceFetchError(InputError):
    """An https:// source could not be fetched; ``retryable`` when the cause may pass."""

    code = "source_unavailable"

    def __init__(self, message: str, *, code: str, retryable: bool) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable


def _download_https(url: str, destination: Path, *, settings: Settings) -> None:
    """Fetches a client's https:// source under the webhook address guard and the size and time caps."""
    try:
        download(
            url,
            destination,
            allow_private=settings.webhook_allow_private,
            max_bytes=min(settings.https_source_max_bytes, settings.max_upload_bytes),
            timeout_s=settings.https_source_timeout_s,
            read_timeout_s=settings.https_source_read_timeout_s,
            connect_timeout_s=settings.https_source_connect_timeout_s,
            max_redirects=settings.https_source_max_redirects,
            ca_bundle=settings.outbound_ca_bundle,
        )
    except EgressError as exc:
        code = exc.code if exc.code.startswith("source_") else f"source_{exc.code}"
        raise SourceFetchError(
            f"the source URL could not be fetched: {exc.message}", code=code[:64], retryable=exc.retryable
        ) from exc


def remove_job_copy(*, job_id: uuid.UUID, settings: Settings) -> None:
    shutil.rmtree(_job_dir(settings, job_id), ignore_errors=True)


def prune_stale_copies(settings: Settings, *, stale_after_s: float = STALE_AFTER_S) -> int:
    """Removes copies nobody touched for ``stale_after_s`` (jobs that ended on another worker)."""
    global _last_prune
    now = time.time()
    if now - _last_prune < _PRUNE_EVERY_S:
        return 0
    _last_prune = now
    root = settings.work_dir / "jobs"
    removed = 0
    if not root.is_dir():
        return 0
    for job_dir in root.iterdir():
        try:
            if now - job_dir.stat().st_mtime > stale_after_s:
                shutil.rmtree(job_dir, ignore_errors=True)
                removed += 1
        except FileNotFoundError:
            continue
    return removed
