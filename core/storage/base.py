"""What every object store offers: streamed writers, reads, presigned uploads and a health check."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.config import StorageKind

__all__ = ["ObjectInfo", "ObjectReader", "ObjectStore", "ObjectWriter", "PresignedUpload"]

# What one step of a streamed read holds: a few of them in memory at a time, whatever the size.
READ_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class ObjectReader:
    """An object opened for reading: its size, and its bytes in chunks as they are read (the file
    or connection is released once ``chunks`` is exhausted or closed)."""

    size: int
    chunks: Iterator[bytes]


@dataclass(frozen=True)
class PresignedUpload:
    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)
    # True when the URL is the API's own upload route, which takes the caller's API key like
    # every route; a presigned storage URL carries its own credential and must not get the key.
    send_api_key: bool = False


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
    def open_reader(self, key: str, *, chunk_bytes: int = READ_CHUNK_BYTES) -> ObjectReader:
        """The object opened for a streamed read; ObjectNotFoundError when absent (raised here,
        before any byte is handed out)."""

    @abstractmethod
    def download(self, key: str, destination: Path) -> int:
        """Streams the object to ``destination`` (replaced atomically); returns its size."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Removes the object; an absent object is not an error."""

    @abstractmethod
    def copy(self, source: str, destination: str, *, if_etag: str | None = None) -> None:
        """Copies ``source`` to ``destination`` inside the store. With ``if_etag``, only while the
        source is still that version (ObjectChangedError otherwise); ObjectNotFoundError when absent."""

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
