"""Object storage for videos: any S3 endpoint through boto3, or a local directory for one machine.

Writes are streamed: an ``ObjectWriter`` takes the bytes as they arrive and holds at most one
multipart part (``UPLOAD_PART_BYTES``) in memory. Keys are derived from ids by the callers, so a
retried write overwrites instead of leaving a second copy.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from core.config import Settings, StorageKind
from core.errors import InvalidRequestError, ObjectNotFoundError, StorageUnavailableError

__all__ = [
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "ObjectWriter",
    "PresignedUpload",
    "S3ObjectStore",
    "get_object_store",
    "get_source_store",
    "make_s3_client",
    "parse_s3_uri",
    "video_key",
]

_DOWNLOAD_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class PresignedUpload:
    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)


def video_key(*, tenant_id: uuid.UUID, video_id: uuid.UUID) -> str:
    return f"videos/{tenant_id}/{video_id}/source"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/key → (bucket, key); InvalidRequestError for anything else."""
    parts = urlsplit(uri)
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key or parts.query or parts.fragment:
        raise InvalidRequestError(
            f"source must look like s3://bucket/key, got {uri!r}", code="invalid_source"
        )
    if len(key) > 1024:
        raise InvalidRequestError("source key is longer than 1024 characters", code="invalid_source")
    return parts.netloc, key


class ObjectWriter(ABC):
    """Receives an object's bytes in order; ``commit`` makes it visible, ``abort`` leaves nothing."""

    def __init__(self) -> None:
        self.size = 0

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self) -> int: ...

    @abstractmethod
    def abort(self) -> None: ...


class ObjectStore(ABC):
    kind: StorageKind

    @abstractmethod
    def location(self, key: str) -> str:
        """A URI naming the object, for logs and error messages."""

    @abstractmethod
    def open_writer(self, key: str, *, content_type: str | None = None) -> ObjectWriter: ...

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Size and type; ObjectNotFoundError when absent."""

    @abstractmethod
    def read_head_bytes(self, key: str, length: int) -> bytes:
        """The object's first ``length`` bytes (fewer when it is shorter)."""

    @abstractmethod
    def download(self, key: str, destination: Path) -> int:
        """Streams the object to ``destination`` (replaced atomically); returns its size."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Removes the object; an absent object is not an error."""

    @abstractmethod
    def presign_upload(self, key: str, *, size_bytes: int, expires_s: int) -> PresignedUpload | None:
        """A URL a client can PUT the object to, or None when this store cannot make one."""

    @abstractmethod
    def check(self) -> None:
        """Raises StorageUnavailableError when the store cannot be used."""

    def local_path(self, key: str) -> Path | None:
        """The object's file when it already lives on this machine (no copy needed)."""
        return None

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> int:
        writer = self.open_writer(key, content_type=content_type)
        try:
            writer.write(data)
            return writer.commit()
        except BaseException:
            writer.abort()
            raise


# --- local directory -------------------------------------------------------------------------


class _LocalWriter(ObjectWriter):
    def __init__(self, final: Path, partial: Path) -> None:
        super().__init__()
        self._final = final
        self._partial = partial
        partial.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(partial, "wb")  # noqa: SIM115 - closed in commit/abort

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self.size += len(data)

    def commit(self) -> int:
        self._handle.close()
        self._final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._partial, self._final)
        return self.size

    def abort(self) -> None:
        self._handle.close()
        self._partial.unlink(missing_ok=True)


class LocalObjectStore(ObjectStore):
    kind = StorageKind.LOCAL

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"bad storage key {key!r}")
        return self.root.joinpath(*relative.parts)

    def location(self, key: str) -> str:
        return self._path(key).as_uri()

    def open_writer(self, key: str, *, content_type: str | None = None) -> ObjectWriter:
        final = self._path(key)
        try:
            return _LocalWriter(final, self.root / ".incoming" / f"{uuid.uuid4().hex}.part")
        except OSError as exc:
            raise StorageUnavailableError(f"cannot write to {self.root}: {exc.strerror}") from exc

    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            return ObjectInfo(size=path.stat().st_size)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(self.location(key)) from exc

    def read_head_bytes(self, key: str, length: int) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as handle:
                return handle.read(length)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(self.location(key)) from exc

    def download(self, key: str, destination: Path) -> int:
        path = self._path(key)
        partial = destination.with_name(destination.name + f".{uuid.uuid4().hex}.part")
        try:
            shutil.copyfile(path, partial)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(self.location(key)) from exc
        os.replace(partial, destination)
        return destination.stat().st_size

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Drop the now-empty per-video directories, never the root.
        for parent in path.parents:
            if parent == self.root or not parent.is_relative_to(self.root):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def presign_upload(self, key: str, *, size_bytes: int, expires_s: int) -> PresignedUpload | None:
        return None  # the API receives direct uploads itself (PUT /v1/uploads/{id})

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailableError(
                f"storage directory {self.root} is unusable: {exc.strerror}"
            ) from exc
        if not os.access(self.root, os.W_OK):
            raise StorageUnavailableError(f"storage directory {self.root} is not writable")


# --- S3 ----------------------------------------------------------------------------------------


def _s3_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def _translate(exc: BaseException, location: str) -> Exception:
    """botocore's errors → ObjectNotFoundError (client's fault) or StorageUnavailableError."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound") or status == 404:
            return ObjectNotFoundError(location)
        if code in ("403", "AccessDenied", "AllAccessDisabled") or status == 403:
            return ObjectNotFoundError(location, reason="not readable by the service")
        return StorageUnavailableError(f"storage refused the request for {location}: {code or status}")
    return StorageUnavailableError(f"storage unreachable for {location}: {type(exc).__name__}")


class _S3Writer(ObjectWriter):
    def __init__(self, store: S3ObjectStore, key: str, content_type: str | None) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._content_type = content_type or "application/octet-stream"
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _call(self, method: str, **params: Any) -> Any:
        try:
            return getattr(self._store.client, method)(
                Bucket=self._store.bucket, Key=self._store.full_key(self._key), **params
            )
        except _s3_errors() as exc:
            raise _translate(exc, self._store.location(self._key)) from exc

    def _flush_part(self, length: int) -> None:
        if self._upload_id is None:
            created = self._call("create_multipart_upload", ContentType=self._content_type)
            self._upload_id = created["UploadId"]
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        number = len(self._parts) + 1
        answer = self._call("upload_part", UploadId=self._upload_id, PartNumber=number, Body=body)
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def write(self, data: bytes) -> None:
        self._buffer.extend(data)
        self.size += len(data)
        part_bytes = self._store.part_bytes
        while len(self._buffer) >= part_bytes:
            self._flush_part(part_bytes)

    def commit(self) -> int:
        if self._upload_id is None:  # small object: one plain PUT
            self._call("put_object", Body=bytes(self._buffer), ContentType=self._content_type)
            self._buffer.clear()
            return self.size
        if self._buffer:
            self._flush_part(len(self._buffer))
        self._call(
            "complete_multipart_upload", UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
        )
        return self.size

    def abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is not None:
            # If this fails too, storage expires abandoned multipart uploads by lifecycle rule.
            with contextlib.suppress(StorageUnavailableError, ObjectNotFoundError):
                self._call("abort_multipart_upload", UploadId=self._upload_id)
            self._upload_id = None


class S3ObjectStore(ObjectStore):
    kind = StorageKind.S3

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        part_bytes: int = 8 * 1024 * 1024,
        presign_client: Any = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.part_bytes = part_bytes
        self._presign_client = presign_client or client

    def full_key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.full_key(key)}"

    def open_writer(self, key: str, *, content_type: str | None = None) -> ObjectWriter:
        return _S3Writer(self, key, content_type)

    def head(self, key: str) -> ObjectInfo:
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except _s3_errors() as exc:
            raise _translate(exc, self.location(key)) from exc
        return ObjectInfo(
            size=int(answer["ContentLength"]), etag=answer.get("ETag"), content_type=answer.get("ContentType")
        )

    def read_head_bytes(self, key: str, length: int) -> bytes:
        try:
            answer = self.client.get_object(
                Bucket=self.bucket, Key=self.full_key(key), Range=f"bytes=0-{length - 1}"
            )
            return bytes(answer["Body"].read(length))
        except _s3_errors() as exc:
            from botocore.exceptions import ClientError

            # An empty object cannot satisfy any range.
            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            raise _translate(exc, self.location(key)) from exc

    def download(self, key: str, destination: Path) -> int:
        partial = destination.with_name(destination.name + f".{uuid.uuid4().hex}.part")
        size = 0
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))
            with open(partial, "wb") as handle:
                for chunk in answer["Body"].iter_chunks(_DOWNLOAD_CHUNK):
                    handle.write(chunk)
                    size += len(chunk)
        except _s3_errors() as exc:
            partial.unlink(missing_ok=True)
            raise _translate(exc, self.location(key)) from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, destination)
        return size

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.full_key(key))
        except _s3_errors() as exc:
            error = _translate(exc, self.location(key))
            if not isinstance(error, ObjectNotFoundError):
                raise error from exc

    def presign_upload(self, key: str, *, size_bytes: int, expires_s: int) -> PresignedUpload | None:
        # Signing the length makes storage refuse a body of any other size.
        url = self._presign_client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self.full_key(key), "ContentLength": size_bytes},
            ExpiresIn=expires_s,
        )
        return PresignedUpload(url=url, method="PUT", headers={"Content-Length": str(size_bytes)})

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except _s3_errors() as exc:
            error = _translate(exc, f"s3://{self.bucket}")
            if isinstance(error, ObjectNotFoundError):
                raise StorageUnavailableError(
                    f"bucket {self.bucket!r} does not exist or is not readable"
                ) from exc
            raise error from exc


def make_s3_client(settings: Settings, endpoint_url: str | None) -> Any:
    """A boto3 S3 client with the service's credentials, timeouts and retry policy."""
    import boto3
    from botocore.config import Config

    access = settings.s3_access_key_id.get_secret_value() if settings.s3_access_key_id else None
    secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"} if endpoint_url else {},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


@functools.cache
def _s3_clients(settings: Settings, pid: int) -> tuple[Any, Any]:
    # pid in the key: boto3's connection pools must not cross fork().
    client = make_s3_client(settings, settings.s3_endpoint_url)
    public = settings.s3_public_endpoint_url
    presign = make_s3_client(settings, public) if public and public != settings.s3_endpoint_url else client
    return client, presign


@functools.cache
def _object_store(settings: Settings, pid: int) -> ObjectStore:
    if settings.storage_kind is StorageKind.LOCAL:
        return LocalObjectStore(settings.storage_dir)
    client, presign = _s3_clients(settings, pid)
    return S3ObjectStore(
        client,
        settings.storage_bucket,
        settings.storage_prefix,
        part_bytes=settings.upload_part_bytes,
        presign_client=presign,
    )


def get_object_store(settings: Settings) -> ObjectStore:
    """The store holding the service's own objects (STORAGE_URL)."""
    return _object_store(settings, os.getpid())


def get_source_store(settings: Settings, bucket: str) -> S3ObjectStore:
    """Read access to a client's bucket named in ``{"source": "s3://…"}`` (same endpoint and keys)."""
    client, _ = _s3_clients(settings, os.getpid())
    return S3ObjectStore(client, bucket, "")
