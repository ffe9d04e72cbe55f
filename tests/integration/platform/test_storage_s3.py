"""The S3 store against a real S3-compatible server (moto): streamed multipart writes, aborts that
leave nothing, typed errors for missing objects and unreachable storage."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from core.config import load_settings
from core.errors import ObjectNotFoundError, StorageUnavailableError
from core.storage import S3ObjectStore, make_s3_client
from tests.integration.platform.conftest import STORAGE_BUCKET
from tests.utils.platform import free_port
from tests.utils.stack import Stack

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def _store(platform: Stack, *, part_bytes: int = 5 * MIB) -> S3ObjectStore:
    client = make_s3_client(platform.settings, platform.s3_endpoint)
    return S3ObjectStore(client, STORAGE_BUCKET, f"storage-test/{uuid.uuid4().hex}/", part_bytes=part_bytes)


def test_streamed_write_uses_multipart_and_round_trips(platform: Stack, tmp_path: Path) -> None:
    store = _store(platform)
    data = os.urandom(12 * MIB + 123)
    writer = store.open_writer("video", content_type="video/mp4")
    for start in range(0, len(data), MIB):
        writer.write(data[start : start + MIB])
    writer.commit()

    info = store.head("video")
    size = store.download("video", tmp_path / "copy.mp4")

    assert info.size == len(data) == size
    assert info.etag is not None and info.etag.strip('"').endswith("-3")  # three parts
    assert info.content_type == "video/mp4"
    assert hashlib.sha256((tmp_path / "copy.mp4").read_bytes()).digest() == hashlib.sha256(data).digest()
    assert store.read_head_bytes("video", 16) == data[:16]


def test_open_reader_streams_in_chunks_and_refuses_a_missing_object(platform: Stack) -> None:
    store = _store(platform)
    data = os.urandom(3 * MIB + 17)
    store.put_bytes("picture", data)

    reader = store.open_reader("picture", chunk_bytes=MIB)
    chunks = list(reader.chunks)

    assert reader.size == len(data) and b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) <= MIB
    with pytest.raises(ObjectNotFoundError):
        store.open_reader("missing")


def test_aborted_write_leaves_no_object_and_no_upload(platform: Stack) -> None:
    store = _store(platform)
    writer = store.open_writer("partial")
    writer.write(os.urandom(6 * MIB))  # one part already sent

    writer.abort()

    with pytest.raises(ObjectNotFoundError):
        store.head("partial")
    uploads = store.client.list_multipart_uploads(Bucket=STORAGE_BUCKET, Prefix=store.prefix)
    assert uploads.get("Uploads", []) == []


def test_small_and_empty_objects(platform: Stack) -> None:
    store = _store(platform)
    store.put_bytes("small", b"tiny")
    store.put_bytes("empty", b"")

    assert store.read_head_bytes("small", 512) == b"tiny"
    assert store.read_head_bytes("empty", 512) == b""
    store.delete("small")
    store.delete("small")  # absent: not an error
    with pytest.raises(ObjectNotFoundError):
        store.head("small")


def test_missing_bucket_and_unreachable_endpoint_are_typed(platform: Stack) -> None:
    client = make_s3_client(platform.settings, platform.s3_endpoint)
    with pytest.raises(StorageUnavailableError, match="does not exist"):
        S3ObjectStore(client, "no-such-bucket").check()

    nowhere = load_settings(storage_url="s3://bucket", s3_access_key_id="x", s3_secret_access_key="y")
    dead = S3ObjectStore(make_s3_client(nowhere, f"http://127.0.0.1:{free_port()}"), "bucket")
    with pytest.raises(StorageUnavailableError):
        dead.check()
    with pytest.raises(StorageUnavailableError):
        dead.put_bytes("key", b"data")
