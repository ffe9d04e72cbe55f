"""What the batch command sends: the media files of a folder, or the rows of a CSV that name local
paths (uploaded first) beside remote sources."""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.cli_batch_client import EXIT_MANIFEST, CliError

__all__ = [
    "IMAGE_SUFFIXES",
    "MEDIA_SUFFIXES",
    "VIDEO_SUFFIXES",
    "LocalItem",
    "csv_rows",
    "folder_items",
    "is_local",
    "local_submission",
]

# Files a folder is searched for (the containers and image formats the service accepts by
# default); what a file really is, is told by its first bytes before it is uploaded.
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES
_REMOTE_SCHEMES = ("s3://", "https://", "http://")


@dataclass
class LocalItem:
    path: Path
    external_id: str | None


def is_local(source: str) -> bool:
    return not source.lower().startswith(_REMOTE_SCHEMES)


def folder_items(folder: Path) -> list[LocalItem]:
    files = sorted(path for path in folder.rglob("*") if path.is_file() and not path.name.startswith("."))
    media = [path for path in files if path.suffix.lower() in MEDIA_SUFFIXES]
    if not media:
        raise CliError(
            f"{folder}: no video or image files ({', '.join(sorted(MEDIA_SUFFIXES))}) in this folder",
            exit_code=EXIT_MANIFEST,
        )
    if skipped := len(files) - len(media):
        # Said, so that files left out of the batch are noticed rather than silently missing.
        print(
            f"{skipped} other file{'s' if skipped != 1 else ''} left out "
            f"(only {', '.join(sorted(MEDIA_SUFFIXES))} are sent)",
            file=sys.stderr,
        )
    return [LocalItem(path=path, external_id=str(path.relative_to(folder))) for path in media]


def csv_rows(manifest: Path) -> list[dict[str, str]] | None:
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{manifest}: cannot read the CSV ({exc})", exit_code=EXIT_MANIFEST) from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [name.strip() for name in reader.fieldnames or []]
    column = "source" if "source" in fields else "path" if "path" in fields else None
    if column is None:
        return None  # not ours to judge: the API answers what is wrong with the manifest
    reader.fieldnames = fields
    rows = []
    for row in reader:
        source = (row.get(column) or "").strip()
        if source:
            rows.append({"source": source, "external_id": (row.get("external_id") or "").strip()})
    return rows


def local_submission(manifest: Path) -> tuple[list[LocalItem], list[dict[str, Any]]] | None:
    """(local files, remote items) for a folder or a CSV naming local paths; None for a manifest
    of remote sources only, which is sent as it is."""
    if manifest.is_dir():
        return folder_items(manifest), []
    if manifest.suffix.lower() != ".csv" or not manifest.is_file():
        return None
    rows = csv_rows(manifest)
    if rows is None or not any(is_local(row["source"]) for row in rows):
        return None
    local, remote = [], []
    for row in rows:
        external_id = row["external_id"] or None
        if is_local(row["source"]):
            path = Path(row["source"]).expanduser()
            path = path if path.is_absolute() else manifest.parent / path
            local.append(LocalItem(path=path, external_id=external_id or row["source"]))
        else:
            remote.append({"source": row["source"], **({"external_id": external_id} if external_id else {})})
    return local, remote
