"""The local-directory store: atomic writes, aborts leave nothing, keys cannot escape the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InvalidRequestError, ObjectNotFoundError
from core.storage import LocalObjectStore, parse_s3_uri, video_path


def test_writer_commits_atomically(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    writer = store.open_writer("videos/t/v/source")
    writer.write(b"abc")
    assert not (tmp_path / "videos/t/v/source").exists()  # invisible until committed

    size = writer.commit()

    assert size == 3
    assert store.head("videos/t/v/source").size == 3
    assert store.read_head_bytes("videos/t/v/source", 2) == b"ab"


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    writer = store.open_writer("a/b")
    writer.write(b"partial")

    writer.abort()

    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    with pytest.raises(ObjectNotFoundError):
        store.head("a/b")


def test_download_and_delete_prunes_empty_directories(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "root")
    store.put_bytes("videos/t/v/source", b"video bytes")

    copied = store.download("videos/t/v/source", tmp_path / "copy.mp4")
    store.delete("videos/t/v/source")
    store.delete("videos/t/v/source")  # deleting twice is fine

    assert copied == 11 and (tmp_path / "copy.mp4").read_bytes() == b"video bytes"
    assert not (tmp_path / "root" / "videos").exists()
    assert (tmp_path / "root").is_dir()


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "a/../../b", ""])
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="bad storage key"):
        LocalObjectStore(tmp_path).open_writer(key)


def test_check_refuses_unwritable_root(tmp_path: Path) -> None:
    from core.errors import StorageUnavailableError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageUnavailableError):
        LocalObjectStore(blocker / "storage").check()


def test_video_key_is_derived_from_ids() -> None:
    import uuid

    tenant, video = uuid.UUID(int=1), uuid.UUID(int=2)
    assert video_path(tenant_id=tenant, video_id=video) == f"videos/{tenant}/{video}/source"


@pytest.mark.parametrize("uri", ["s3://bucket", "https://bucket/key", "s3:///key", "s3://b/k?versionId=1"])
def test_parse_s3_uri_refuses_malformed(uri: str) -> None:
    with pytest.raises(InvalidRequestError):
        parse_s3_uri(uri)


def test_parse_s3_uri() -> None:
    assert parse_s3_uri("s3://bucket/dir/clip.mp4") == ("bucket", "dir/clip.mp4")


def test_open_reader_streams_in_chunks_and_refuses_a_missing_object(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    data = bytes(range(256)) * 100
    store.put_bytes("pictures/a", data)

    reader = store.open_reader("pictures/a", chunk_bytes=1000)
    chunks = list(reader.chunks)

    assert reader.size == len(data) and b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) == 1000
    with pytest.raises(ObjectNotFoundError):
        store.open_reader("pictures/missing")
