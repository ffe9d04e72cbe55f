"""What every object store offers: streamed writers, reads, presigned uploads and a health check."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from core.config import StorageKind

__all__ = ["ObjectInfo", "ObjectReader", "ObjectStore", "ObjectWriter", "PresignedUpload"]


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


class ObjectReader(ABC):
    """An object's bytes from the start, a bounded piece at a time (never the whole object in
    memory); ``close`` releases the file or connection. A context manager."""

    def __init__(self, size: int) -> None:
        self.size = size

    @abstractmethod
    def read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of what comes next; b"" at the end."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
    def open_reader(self, key: str) -> ObjectReader:
        """The object opened for reading in pieces; ObjectNotFoundError when absent."""

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
