"""Batch manifests (JSON, CSV or JSON lines) read into one ``BatchCreate``, each item checked.

Every item's source is checked (an allowed bucket, or an https:// URL the address guard accepts)
before anything is stored.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from api.errors import validation_message
from api.schemas.batches import BatchCreate, BatchItem
from api.services.sources import readable_https_source, readable_source
from core.config import Settings
from core.errors import InvalidRequestError
from core.sources import source_scheme

__all__ = ["ManifestFormat", "Source", "check_item", "manifest_kind", "parse_manifest"]

ManifestFormat = Literal["json", "csv", "jsonl"]


def manifest_kind(content_type: str) -> ManifestFormat | None:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return "json"
    if media_type in ("text/csv", "application/csv"):
        return "csv"
    if media_type in (
        "application/x-ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    ):
        return "jsonl"
    return None


def _item_error(index: int, message: str, code: str = "invalid_item") -> InvalidRequestError:
    return InvalidRequestError(f"items[{index}]: {message}", code=code)


def _parse_csv(body: bytes) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError("the CSV manifest is not UTF-8", code="invalid_manifest") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [name.strip() for name in reader.fieldnames or []]
    if "source" not in fields and "upload_id" not in fields:
        raise InvalidRequestError(
            "the CSV manifest needs a header row with a 'source' (or 'upload_id') column, and "
            "optionally 'external_id'",
            code="invalid_manifest",
        )
    unknown = sorted(set(fields) - {"source", "upload_id", "external_id"})
    if unknown:
        raise InvalidRequestError(f"unknown CSV columns {unknown}", code="invalid_manifest")
    reader.fieldnames = fields
    items = []
    try:
        for row in reader:
            if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
                continue  # blank lines
            if None in row:
                raise InvalidRequestError(
                    f"CSV line {reader.line_num} has more cells than the header", code="invalid_manifest"
                )
            items.append({key: value for key, value in row.items() if value not in (None, "")})
    except csv.Error as exc:
        raise InvalidRequestError(f"the CSV manifest is malformed: {exc}", code="invalid_manifest") from exc
    return items


def _parse_jsonl(body: bytes) -> list[dict[str, Any]]:
    items = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequestError(f"JSONL line {number} is not JSON", code="invalid_manifest") from exc
        if not isinstance(item, dict):
            raise InvalidRequestError(f"JSONL line {number} is not an object", code="invalid_manifest")
        items.append(item)
    return items


def parse_manifest(body: bytes, *, kind: ManifestFormat, query: dict[str, Any]) -> BatchCreate:
    """A JSON request body, or a CSV/JSONL manifest with the batch's fields in ``query``."""
    try:
        if kind == "json":
            # Strict, as a job's JSON body: true is no number. A CSV or JSONL manifest's batch fields
            # come as query parameters, which are text.
            return BatchCreate.model_validate_json(body, strict=True)
        items = _parse_csv(body) if kind == "csv" else _parse_jsonl(body)
        if not items:
            raise InvalidRequestError("the manifest has no items", code="empty_manifest")
        return BatchCreate.model_validate({**query, "items": items})
    except ValidationError as exc:
        raise InvalidRequestError(validation_message(exc.errors()), code="validation_error") from exc


@dataclass(frozen=True)
class Source:
    """Where an item's video is: a client URI, or (for an upload) the service's own object."""

    uri: str | None
    filename: str | None
    video_id: uuid.UUID | None = None  # an upload's id, which its video row takes
    storage_key: str | None = None
    size_bytes: int | None = None
    container: str | None = None
    superseded_key: str | None = None  # see VideoDraft.superseded_key


def check_item(index: int, item: BatchItem, *, settings: Settings) -> Source:
    """A ``source`` item's URI, checked (uploads are checked against storage by the caller)."""
    if item.source is None:
        raise _item_error(index, "give a source (s3:// or https://)", "invalid_source")
    scheme = source_scheme(item.source)
    if scheme == "s3":
        try:
            bucket, key = readable_source(item.source, settings=settings)
        except InvalidRequestError as exc:
            raise _item_error(index, exc.message, exc.code) from exc
        return Source(uri=f"s3://{bucket}/{key}", filename=key.rsplit("/", 1)[-1][:255] or None)
    if scheme == "https":
        try:
            uri, name = readable_https_source(item.source, settings=settings)
        except InvalidRequestError as exc:
            raise _item_error(index, exc.message, exc.code) from exc
        return Source(uri=uri, filename=name)
    raise _item_error(index, "source must be s3://bucket/key or an https:// URL", "invalid_source")
