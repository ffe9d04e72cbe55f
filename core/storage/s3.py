"""Object storage on any S3 endpoint through boto3: multipart writes one part at a time.

A writer holds at most one part (``UPLOAD_PART_BYTES``) in memory; botocore's errors become
``ObjectNotFoundError`` (the client's fault) or ``StorageUnavailableError`` (ours, retried).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.config import Settings, StorageKind
from core.errors import InvalidRequestError, ObjectChangedError, ObjectNotFoundError, StorageUnavailableError
from core.storage.base import (
    READ_CHUNK_BYTES,
    ObjectInfo,
    ObjectReader,
    ObjectStore,
    ObjectWriter,
    PresignedUpload,
)

__all__ = ["S3ObjectStore", "make_s3_client", "parse_s3_uri"]

_DOWNLOAD_CHUNK = 1024 * 1024


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

    def open_reader(self, key: str, *, chunk_bytes: int = READ_CHUNK_BYTES) -> ObjectReader:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))
        except _s3_errors() as exc:
            raise _translate(exc, self.location(key)) from exc
        body = answer["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(chunk_bytes)
            except _s3_errors() as exc:
                raise _translate(exc, self.location(key)) from exc
            finally:
                body.close()

        return ObjectReader(size=int(answer["ContentLength"]), chunks=chunks())

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

    def copy(self, source: str, destination: str, *, if_etag: str | None = None) -> None:
        from botocore.exceptions import ClientError

        extra: dict[str, Any] = {"CopySourceIfMatch": if_etag} if if_etag else {}
        try:
            # The managed copy switches to a multipart copy past 8 MiB, so any object size works.
            self.client.copy(
                {"Bucket": self.bucket, "Key": self.full_key(source)},
                self.bucket,
                self.full_key(destination),
                ExtraArgs=extra or None,
            )
        except _s3_errors() as exc:
            if isinstance(exc, ClientError):
                code = str(exc.response.get("Error", {}).get("Code", ""))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
                if code in ("PreconditionFailed", "412") or status == 412:
                    raise ObjectChangedError(self.location(source)) from exc
            raise _translate(exc, self.location(source)) from exc

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
