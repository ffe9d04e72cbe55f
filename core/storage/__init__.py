"""Object storage for videos and their outputs: any S3 endpoint through boto3, or a local directory.

Writes are streamed through an ``ObjectWriter``; keys come from ``core.storage.paths`` and are
derived from ids, so a retried write overwrites instead of leaving a second copy. Stores are
built once per process (``get_object_store``), never at import.
"""

from __future__ import annotations

from typing import Any

from core.config import Settings, StorageKind
from core.process_local import per_process
from core.storage.base import ObjectInfo, ObjectStore, ObjectWriter, PresignedUpload
from core.storage.local import LocalObjectStore
from core.storage.paths import artifact_path, explanation_path, statistics_path, video_path
from core.storage.s3 import S3ObjectStore, make_s3_client, parse_s3_uri

__all__ = [
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "ObjectWriter",
    "PresignedUpload",
    "S3ObjectStore",
    "artifact_path",
    "explanation_path",
    "get_object_store",
    "get_source_store",
    "make_s3_client",
    "parse_s3_uri",
    "statistics_path",
    "video_path",
]


@per_process
def _s3_clients(settings: Settings) -> tuple[Any, Any]:
    client = make_s3_client(settings, settings.s3_endpoint_url)
    public = settings.s3_public_endpoint_url
    presign = make_s3_client(settings, public) if public and public != settings.s3_endpoint_url else client
    return client, presign


@per_process
def _object_store(settings: Settings) -> ObjectStore:
    if settings.storage_kind is StorageKind.LOCAL:
        return LocalObjectStore(settings.storage_dir)
    client, presign = _s3_clients(settings)
    return S3ObjectStore(
        client,
        settings.storage_bucket,
        settings.storage_prefix,
        part_bytes=settings.upload_part_bytes,
        presign_client=presign,
    )


def get_object_store(settings: Settings) -> ObjectStore:
    """The store holding the service's own objects (STORAGE_URL)."""
    return _object_store(settings)


def get_source_store(settings: Settings, bucket: str) -> S3ObjectStore:
    """Read access to a client's bucket named in ``{"source": "s3://…"}`` (same endpoint and keys)."""
    client, _ = _s3_clients(settings)
    return S3ObjectStore(client, bucket, "")
