"""Where the worker fetches a job's video from: the source's scheme, read case-insensitively."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import cast

import pytest

from api.schemas.batches import BatchItem
from api.services.batch_manifests import check_item
from core.config import Settings, load_settings
from core.egress.guard import EgressError
from core.models import Video
from core.sources import normalize_source, source_scheme
from core.storage import ObjectStore, get_object_store
from worker import fetch
from worker.failures import FailureKind, classify

# A source that is not ours is never read through the service's own store.
_NO_STORE = cast(ObjectStore, None)


@pytest.mark.parametrize(
    ("uri", "scheme", "normal"),
    [
        ("HTTPS://cdn.example.com/A.mp4", "https", "https://cdn.example.com/A.mp4"),
        ("Https://cdn.example.com/a.mp4?sig=X#t", "https", "https://cdn.example.com/a.mp4?sig=X#t"),
        ("S3://Bucket/Key.mp4", "s3", "s3://Bucket/Key.mp4"),
        ("s3://bucket/key.mp4", "s3", "s3://bucket/key.mp4"),
        ("no-scheme/here.mp4", "", "no-scheme/here.mp4"),
    ],
)
def test_source_scheme_is_case_insensitive(uri: str, scheme: str, normal: str) -> None:
    assert source_scheme(uri) == scheme
    assert normalize_source(uri) == normal


def _video(source_uri: str) -> Video:
    return Video(owned=False, storage_key=None, source_uri=source_uri, filename="clip.mp4", container="mp4")


def test_upper_case_https_source_is_downloaded_over_https(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[str] = []

    def fake_download(url: str, destination: Path, *, settings: Settings) -> None:
        fetched.append(url)
        destination.write_bytes(b"video")

    monkeypatch.setattr(fetch, "_download_https", fake_download)
    settings = load_settings(work_dir=str(tmp_path))

    path = fetch.local_video(
        job_id=uuid.uuid4(),
        video=_video("HTTPS://cdn.example.com/clip.mp4"),
        storage=_NO_STORE,
        settings=settings,
    )

    assert fetched == ["HTTPS://cdn.example.com/clip.mp4"]
    assert path.read_bytes() == b"video"


def test_unknown_scheme_is_a_typed_input_error(tmp_path: Path) -> None:
    settings = load_settings(work_dir=str(tmp_path))
    with pytest.raises(fetch.SourceFetchError) as caught:
        fetch.local_video(
            job_id=uuid.uuid4(), video=_video("ftp://host/a.mp4"), storage=_NO_STORE, settings=settings
        )
    assert caught.value.code == "invalid_source"
    assert caught.value.retryable is False


def test_batch_item_with_upper_case_scheme_is_stored_in_lower_case() -> None:
    settings = load_settings()
    source = check_item(0, BatchItem(source="HTTPS://cdn.example.com/videos/clip.mp4"), settings=settings)

    assert source.uri == "https://cdn.example.com/videos/clip.mp4"
    assert source.filename == "clip.mp4"


def test_a_source_too_slow_to_download_fails_without_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The download's caps come from the settings, and a timed-out fetch is a user failure that
    is not retried: it would only run into the same cap on every attempt."""
    seen: dict[str, object] = {}

    def too_slow(url: str, destination: Path, **options: object) -> None:
        seen.update(options)
        raise EgressError("the source did not download within 15 s", code="source_timeout")

    monkeypatch.setattr(fetch, "download", too_slow)
    settings = load_settings(
        work_dir=str(tmp_path), https_source_timeout_s=15.0, https_source_read_timeout_s=4.0
    )

    with pytest.raises(fetch.SourceFetchError) as caught:
        fetch.local_video(
            job_id=uuid.uuid4(),
            video=_video("https://cdn.example.com/a.mp4"),
            storage=_NO_STORE,
            settings=settings,
        )

    assert (seen["timeout_s"], seen["read_timeout_s"]) == (15.0, 4.0)
    failure = classify(caught.value)
    assert (failure.kind, failure.code, failure.retryable) == (FailureKind.USER, "source_timeout", False)


def _stored_video(tmp_path: Path, data: bytes, **recorded: object) -> tuple[Video, ObjectStore, Settings]:
    settings = load_settings(work_dir=str(tmp_path / "work"), storage_url=(tmp_path / "storage").as_uri())
    storage = get_object_store(settings)
    key = f"videos/{uuid.uuid4()}/source"
    storage.put_bytes(key, data)
    values: dict[str, object] = {"size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    values.update(recorded)
    video = Video(owned=True, storage_key=key, filename="clip.mp4", container="mp4", **values)
    return video, storage, settings


def test_the_video_a_job_recorded_passes(tmp_path: Path) -> None:
    video, storage, settings = _stored_video(tmp_path, b"video bytes")
    path = fetch.local_video(
        job_id=uuid.uuid4(), video=video, storage=storage, settings=settings, check_hash=True
    )
    assert path.read_bytes() == b"video bytes"


@pytest.mark.parametrize(
    ("recorded", "check_hash", "message"),
    [
        ({"size_bytes": 5}, False, "has 11 bytes, but the job was created with 5"),
        ({"sha256": "0" * 64}, True, "SHA-256 differs"),
    ],
)
def test_a_swapped_video_fails_typed_and_is_not_retried(
    tmp_path: Path, recorded: dict[str, object], check_hash: bool, message: str
) -> None:
    video, storage, settings = _stored_video(tmp_path, b"video bytes", **recorded)
    with pytest.raises(fetch.VideoChangedError, match=message) as caught:
        fetch.local_video(
            job_id=uuid.uuid4(), video=video, storage=storage, settings=settings, check_hash=check_hash
        )
    failure = classify(caught.value)
    assert (failure.code, failure.retryable) == ("video_changed", False)
