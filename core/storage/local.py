"""Object storage in a local directory, for one machine: the worker reads videos in place."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from core.config import StorageKind
from core.errors import ObjectNotFoundError, StorageUnavailableError
from core.storage.base import (
    READ_CHUNK_BYTES,
    ObjectInfo,
    ObjectReader,
    ObjectStore,
    ObjectWriter,
    PresignedUpload,
)

__all__ = ["LocalObjectStore"]


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

    def open_reader(self, key: str, *, chunk_bytes: int = READ_CHUNK_BYTES) -> ObjectReader:
        path = self._path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the generator below
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(self.location(key)) from exc

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(chunk_bytes):
                    yield chunk

        return ObjectReader(size=os.fstat(handle.fileno()).st_size, chunks=chunks())

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

    def copy(self, source: str, destination: str, *, if_etag: str | None = None) -> None:
        # Local objects carry no version tag: files here only change through this service.
        writer = self.open_writer(destination)
        try:
            with open(self._path(source), "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    writer.write(chunk)
            writer.commit()
        except FileNotFoundError as exc:
            writer.abort()
            raise ObjectNotFoundError(self.location(source)) from exc
        except BaseException:
            writer.abort()
            raise

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
