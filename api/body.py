"""Receives uploaded videos as a stream: multipart forms and raw bodies go to storage part by part.

Nothing holds a whole file: bytes are hashed, their container sniffed from the first bytes, and
passed on to an ``ObjectWriter`` in batches. Size caps are enforced while the bytes arrive; after a
refusal the rest of the body is read and dropped (up to a bound) so that the client, still
sending, gets to read the answer instead of a reset connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from api.errors import BodyRejected
from core.errors import InvalidRequestError, PayloadTooLargeError, ServiceError, UnsupportedMediaTypeError
from core.media import SNIFF_BYTES, image_is_animated, sniff_media
from core.storage import ObjectWriter

__all__ = [
    "ReceivedFile",
    "ReceivedForm",
    "receive_json_body",
    "receive_multipart",
    "receive_raw_body",
    "sanitize_filename",
]

WRITE_BATCH_BYTES = 1024 * 1024  # bytes handed to storage per thread hop
MAX_FIELD_BYTES = 8 * 1024
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries, part headers and small fields around the file
DRAIN_LIMIT_BYTES = 32 * 1024 * 1024
DRAIN_TIMEOUT_S = 5.0


_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f]")


def sanitize_filename(raw: str | None) -> str | None:
    """A display name only (storage keys never use it): last path component, no control chars."""
    if not raw:
        return None
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_FILENAME.sub("", name).strip()
    if name in ("", ".", ".."):
        return None
    return name[:255]


@dataclass(frozen=True)
class ReceivedFile:
    filename: str | None
    content_type: str | None
    size: int
    sha256: str
    container: str


@dataclass
class ReceivedForm:
    fields: dict[str, str]
    file: ReceivedFile | None


class _FileSink:
    """Hashes, sniffs and forwards one file's bytes; opens the storage writer only once the
    container is known to be acceptable."""

    def __init__(
        self,
        open_writer: Callable[[str], ObjectWriter],
        *,
        max_bytes: int,
        allowed_containers: Collection[str],
    ) -> None:
        self._open_writer = open_writer
        self.max_bytes = max_bytes
        self._allowed = allowed_containers
        self._hasher = hashlib.sha256()
        self._head = bytearray()
        self._pending = bytearray()
        self._writer: ObjectWriter | None = None
        self.size = 0
        self.container: str | None = None
        self.committed = False

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        self._hasher.update(data)
        if len(self._head) < SNIFF_BYTES:
            self._head.extend(data[: SNIFF_BYTES - len(self._head)])
        self._pending.extend(data)

    def check_size(self) -> None:
        if self.size > self.max_bytes:
            raise PayloadTooLargeError(
                f"the file is larger than the {self.max_bytes} byte limit", code="file_too_large"
            )

    def _sniff(self) -> None:
        if self.container is not None:
            return
        if self.size == 0:
            raise InvalidRequestError("the file is empty", code="empty_file")
        container = sniff_media(bytes(self._head))
        if container is None:
            raise UnsupportedMediaTypeError(
                "the file is not a video or image in a supported format "
                f"({', '.join(sorted(self._allowed))})",
                code="unsupported_format",
            )
        if image_is_animated(bytes(self._head)):
            raise UnsupportedMediaTypeError(
                f"the file is an animated {container}; send the animation as a video (MP4, WebM)",
                code="animated_image",
            )
        if container not in self._allowed:
            raise UnsupportedMediaTypeError(
                f"{container} files are not accepted here (allowed: {', '.join(sorted(self._allowed))})",
                code="unsupported_format",
            )
        self.container = container

    async def flush(self, *, final: bool = False) -> None:
        if self.container is None and (final or len(self._head) >= SNIFF_BYTES):
            self._sniff()
        if self.container is None or not (final or len(self._pending) >= WRITE_BATCH_BYTES):
            return
        if self._writer is None:
            self._writer = await run_in_threadpool(self._open_writer, self.container)
        if self._pending:
            batch = bytes(self._pending)
            self._pending.clear()
            await run_in_threadpool(self._writer.write, batch)

    async def commit(self, *, filename: str | None, content_type: str | None) -> ReceivedFile:
        await self.flush(final=True)
        assert self._writer is not None and self.container is not None
        await run_in_threadpool(self._writer.commit)
        self.committed = True
        return ReceivedFile(
            filename=filename,
            content_type=content_type,
            size=self.size,
            sha256=self._hasher.hexdigest(),
            container=self.container,
        )

    async def abort(self) -> None:
        self._pending.clear()
        if self._writer is not None and not self.committed:
            await run_in_threadpool(self._writer.abort)


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    # Bounded in time too: a client that announces a huge body and then sends nothing must get
    # its answer, not hold the request open forever.
    drained = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_TIMEOUT_S
    iterator = aiter(chunks)
    try:
        while drained <= DRAIN_LIMIT_BYTES:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            drained += len(await asyncio.wait_for(anext(iterator), remaining))
    except (StopAsyncIteration, ClientDisconnect, TimeoutError, BodyRejected):
        return  # the guard refused to read further: the first error is the answer


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidRequestError("Content-Length is not a number", code="invalid_content_length") from exc


@dataclass
class _PartState:
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[str, bytes] = field(default_factory=dict)
    name: str | None = None
    filename: str | None = None
    content_type: str | None = None
    is_file: bool = False
    value: bytearray = field(default_factory=bytearray)


class _MultipartCollector:
    """python-multipart callbacks → fields and file bytes. Callbacks cannot await, so problems are
    recorded in ``error`` and raised by the reading loop."""

    def __init__(self, sink: _FileSink, *, file_field: str, allowed_fields: Collection[str]) -> None:
        self.sink = sink
        self.file_field = file_field
        self.allowed_fields = allowed_fields
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.content_type: str | None = None
        self.saw_file = False
        self.ended = False
        self.error: ServiceError | None = None
        self._part = _PartState()

    def _fail(self, error: ServiceError) -> None:
        if self.error is None:
            self.error = error

    def on_part_begin(self) -> None:
        self._part = _PartState()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._part.header_field.extend(data[start:end])

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._part.header_value.extend(data[start:end])

    def on_header_end(self) -> None:
        part = self._part
        part.headers[part.header_field.decode("latin-1").strip().lower()] = bytes(part.header_value).strip()
        part.header_field = bytearray()
        part.header_value = bytearray()

    def on_headers_finished(self) -> None:
        part = self._part
        _, params = parse_options_header(part.headers.get("content-disposition", b""))
        raw_name = params.get(b"name")
        part.name = raw_name.decode("utf-8", "replace") if raw_name is not None else None
        raw_filename = params.get(b"filename")
        if part.name == self.file_field:
            if self.saw_file:
                self._fail(InvalidRequestError("send one file per request", code="too_many_files"))
                return
            part.is_file = True
            self.saw_file = True
            self.filename = sanitize_filename(
                raw_filename.decode("utf-8", "replace") if raw_filename else None
            )
            content_type = part.headers.get("content-type")
            self.content_type = content_type.decode("latin-1")[:255] if content_type else None
        elif part.name is None or part.name not in self.allowed_fields:
            allowed = ", ".join([self.file_field, *sorted(self.allowed_fields)])
            self._fail(
                InvalidRequestError(
                    f"unknown form field {part.name!r} (allowed: {allowed})", code="unknown_field"
                )
            )
        elif part.name in self.fields:
            self._fail(InvalidRequestError(f"form field {part.name!r} is repeated", code="repeated_field"))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        part = self._part
        if part.is_file:
            self.sink.feed(data[start:end])
            return
        part.value.extend(data[start:end])
        if len(part.value) > MAX_FIELD_BYTES:
            self._fail(
                InvalidRequestError(
                    f"form field {part.name!r} is longer than {MAX_FIELD_BYTES} bytes", code="field_too_large"
                )
            )

    def on_part_end(self) -> None:
        part = self._part
        if self.error is None and not part.is_file and part.name is not None:
            try:
                self.fields[part.name] = part.value.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(
                    InvalidRequestError(f"form field {part.name!r} is not UTF-8", code="invalid_field")
                )

    def on_end(self) -> None:
        self.ended = True


async def receive_multipart(
    request: Request,
    *,
    open_writer: Callable[[str], ObjectWriter],
    max_bytes: int,
    allowed_containers: Collection[str],
    allowed_fields: Collection[str],
    file_field: str = "file",
) -> ReceivedForm:
    """Streams a multipart/form-data body: the ``file_field`` part to storage, small fields kept."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidRequestError("multipart/form-data needs a boundary parameter", code="invalid_multipart")
    sink = _FileSink(open_writer, max_bytes=max_bytes, allowed_containers=allowed_containers)
    collector = _MultipartCollector(sink, file_field=file_field, allowed_fields=allowed_fields)
    callbacks = {
        name: getattr(collector, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
            "on_end",
        )
    }
    chunks = request.stream()
    try:
        declared = _declared_length(request)
        if declared is not None and declared > max_bytes + MULTIPART_OVERHEAD_BYTES:
            raise PayloadTooLargeError(
                f"the request is larger than the {max_bytes} byte upload limit", code="file_too_large"
            )
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        async for chunk in chunks:
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise InvalidRequestError(
                    f"malformed multipart body: {exc}", code="invalid_multipart"
                ) from exc
            if collector.error is not None:
                raise collector.error
            sink.check_size()
            await sink.flush()
        parser.finalize()
        if not collector.ended:
            raise InvalidRequestError(
                "the multipart body ended before its closing boundary", code="invalid_multipart"
            )
        if not collector.saw_file:
            return ReceivedForm(fields=collector.fields, file=None)
        received = await sink.commit(filename=collector.filename, content_type=collector.content_type)
        return ReceivedForm(fields=collector.fields, file=received)
    except ClientDisconnect:
        await sink.abort()
        raise
    except ServiceError:
        await sink.abort()
        await _drain(chunks)
        raise
    except BaseException:
        await sink.abort()
        raise


async def receive_raw_body(
    request: Request,
    *,
    open_writer: Callable[[str], ObjectWriter],
    max_bytes: int,
    allowed_containers: Collection[str],
    filename: str | None = None,
) -> ReceivedFile:
    """Streams a raw request body (a direct upload) to storage."""
    sink = _FileSink(open_writer, max_bytes=max_bytes, allowed_containers=allowed_containers)
    chunks = request.stream()
    try:
        declared = _declared_length(request)
        if declared is not None and declared > max_bytes:
            raise PayloadTooLargeError(
                f"the body is larger than the {max_bytes} byte limit of this upload", code="file_too_large"
            )
        async for chunk in chunks:
            sink.feed(chunk)
            sink.check_size()
            await sink.flush()
        return await sink.commit(filename=filename, content_type=request.headers.get("content-type"))
    except ClientDisconnect:
        await sink.abort()
        raise
    except ServiceError:
        await sink.abort()
        await _drain(chunks)
        raise
    except BaseException:
        await sink.abort()
        raise


async def receive_json_body(
    request: Request, *, max_bytes: int, too_large_message: str | None = None
) -> bytes:
    """The body of a JSON request, refused past ``max_bytes`` without reading further."""
    message = too_large_message or f"JSON bodies are limited to {max_bytes} bytes"
    declared = _declared_length(request)
    if declared is not None and declared > max_bytes:
        raise PayloadTooLargeError(message, code="body_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise PayloadTooLargeError(message, code="body_too_large")
    return bytes(body)
