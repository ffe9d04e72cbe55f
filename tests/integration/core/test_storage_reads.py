"""Reading an S3 object in pieces (a real S3-compatible server, moto): its size up front, bounded
pieces that add up to the object, typed errors for a missing object."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import load_settings
from core.errors import ObjectNotFoundError
from core.storage import S3ObjectStore, make_s3_client
from tests.utils.platform import S3_TEST_CREDENTIALS, create_bucket, moto_s3_server

pytestmark = pytest.mark.integration

BUCKET = "reads"
PIECE = 64 * 1024


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3ObjectStore]:
    log_dir: Path = tmp_path_factory.mktemp("moto-reads")
    with moto_s3_server(log_dir) as endpoint:
        create_bucket(endpoint, BUCKET)
        settings = load_settings(
            s3_access_key_id=S3_TEST_CREDENTIALS["S3_ACCESS_KEY_ID"],
            s3_secret_access_key=S3_TEST_CREDENTIALS["S3_SECRET_ACCESS_KEY"],
        )
        yield S3ObjectStore(make_s3_client(settings, endpoint), BUCKET, f"{uuid.uuid4().hex}/")


def test_reader_gives_the_object_in_bounded_pieces(store: S3ObjectStore) -> None:
    data = os.urandom(5 * PIECE + 17)
    store.put_bytes("picture", data)

    with store.open_reader("picture") as reader:
        size = reader.size
        pieces = list(iter(lambda: reader.read(PIECE), b""))

    assert size == len(data)
    assert max(len(piece) for piece in pieces) <= PIECE
    assert b"".join(pieces) == data


def test_reader_of_a_missing_object_is_typed(store: S3ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError):
        store.open_reader("absent")
