"""/v1/jobs in-process: creation (multipart and JSON), idempotency, pages, cancel, delete, errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from core.config import Settings
from core.db import get_session_factory
from core.models import Frame, Job, Segment, Track, Video
from tests.integration.api.conftest import MAX_UPLOAD_BYTES
from tests.utils.platform import REDIS_URL

Headers = Callable[..., dict[str, str]]


def _submit(client: TestClient, headers: dict[str, str], video: bytes, **fields: str) -> dict:
    extra = {k: v for k, v in headers.items()}
    response = client.post(
        "/v1/jobs", headers=extra, files={"file": ("clip.mp4", video, "video/mp4")}, data=fields
    )
    assert response.status_code == 202, response.text
    return response.json()


def _stored_files(storage_dir: Path) -> set[Path]:
    return {p for p in storage_dir.rglob("*") if p.is_file() and ".incoming" not in p.parts}


def _job_row(settings: Settings, job_id: str) -> Job | None:
    with get_session_factory(settings)() as session:
        return session.get(Job, uuid.UUID(job_id))


def test_create_job_multipart_stores_video_row_and_message(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings, storage_dir: Path
) -> None:
    headers = make_key()
    before = _stored_files(storage_dir)
    queue = redis.Redis.from_url(REDIS_URL)
    probe_key = f"{api_settings.broker_key_prefix}probe"
    queued_before = queue.llen(probe_key)

    response = client.post(
        "/v1/jobs",
        headers=headers,
        files={"file": ("clip.mp4", small_video, "video/mp4")},
        data={"sample_fps": "2", "segment_seconds": "5", "external_id": "ext-1"},
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/jobs/{body['id']}"
    assert body["status"] == "queued"
    assert body["progress"] == {"segments_done": 0, "segments_total": None}
    assert body["options"] == {"sample_fps": 2.0, "segment_seconds": 5.0}
    assert body["external_id"] == "ext-1"
    assert body["video"]["size_bytes"] == len(small_video)
    assert body["video"]["container"] == "mp4"
    new_files = _stored_files(storage_dir) - before
    assert len(new_files) == 1
    assert next(iter(new_files)).read_bytes() == small_video
    row = _job_row(api_settings, body["id"])
    assert row is not None and row.enqueued_at is not None
    assert queue.llen(probe_key) == queued_before + 1


def test_create_job_json_without_source_is_422_in_error_shape(client: TestClient, make_key: Headers) -> None:
    response = client.post("/v1/jobs", headers=make_key(), json={"external_id": "x"})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert "exactly one of source, upload_id and image_base64" in response.json()["error"]["message"]


def test_create_job_source_outside_allowed_buckets_is_422(client: TestClient, make_key: Headers) -> None:
    response = client.post("/v1/jobs", headers=make_key(), json={"source": "s3://other-bucket/clip.mp4"})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "source_not_allowed"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        # Out of range is one code whichever side: zero, negative or too large.
        ({"sample_fps": "0"}, "invalid_option"),
        ({"sample_fps": "-1"}, "invalid_option"),
        ({"sample_fps": "1000"}, "invalid_option"),
        ({"sample_fps": "500"}, "invalid_option"),
        ({"segment_seconds": "0"}, "invalid_option"),
        ({"segment_seconds": "0.1"}, "invalid_option"),
        ({"sample_fps": "fast"}, "validation_error"),
        ({"callback_url": "ftp://example.com/hook"}, "validation_error"),
        ({"colour": "blue"}, "unknown_field"),
    ],
)
def test_create_job_bad_option_is_422_and_keeps_nothing(
    client: TestClient,
    make_key: Headers,
    small_video: bytes,
    storage_dir: Path,
    fields: dict[str, str],
    code: str,
) -> None:
    before = _stored_files(storage_dir)

    response = client.post(
        "/v1/jobs", headers=make_key(), files={"file": ("clip.mp4", small_video, "video/mp4")}, data=fields
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert _stored_files(storage_dir) == before


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"just some text, certainly not a video\n" * 40, 415, "unsupported_format"),
        (b"BM" + b"\x00" * 600, 415, "unsupported_format"),
        (b"", 422, "empty_file"),
        (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (MAX_UPLOAD_BYTES + 10), 413, "file_too_large"),
    ],
    ids=["text", "bmp", "empty", "too-large"],
)
def test_create_job_bad_upload_is_typed_4xx(
    client: TestClient, make_key: Headers, storage_dir: Path, content: bytes, status: int, code: str
) -> None:
    before = _stored_files(storage_dir)

    response = client.post("/v1/jobs", headers=make_key(), files={"file": ("clip.mp4", content, "video/mp4")})

    assert response.status_code == status, response.text
    assert response.json() == {"error": {"code": code, "message": response.json()["error"]["message"]}}
    assert _stored_files(storage_dir) == before


def test_create_job_too_large_streamed_without_length_is_413(
    client: TestClient, make_key: Headers, storage_dir: Path
) -> None:
    boundary = "dfsboundary"

    def body():  # chunked: the server only learns the size while reading
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        yield b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1000
        for _ in range(MAX_UPLOAD_BYTES // 65536 + 2):
            yield b"\x00" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    before = _stored_files(storage_dir)
    response = client.post(
        "/v1/jobs",
        headers={**make_key(), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body(),
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"
    assert _stored_files(storage_dir) == before


def test_create_job_multipart_without_file_is_422(client: TestClient, make_key: Headers) -> None:
    response = client.post("/v1/jobs", headers=make_key(), files={"sample_fps": (None, "2")})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "missing_file"


def test_create_job_other_content_type_is_415(client: TestClient, make_key: Headers) -> None:
    response = client.post("/v1/jobs", headers={**make_key(), "Content-Type": "text/plain"}, content=b"hello")

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_content_type"


def test_idempotency_key_replays_same_job_and_conflicts_on_other_body(
    client: TestClient, make_key: Headers, small_video: bytes, storage_dir: Path, api_settings: Settings
) -> None:
    headers = {**make_key(), "Idempotency-Key": "order-42"}
    first = _submit(client, headers, small_video, sample_fps="2")
    files_after_first = _stored_files(storage_dir)

    replay = client.post(
        "/v1/jobs",
        headers=headers,
        files={"file": ("clip.mp4", small_video, "video/mp4")},
        data={"sample_fps": "2"},
    )
    other = client.post(
        "/v1/jobs",
        headers=headers,
        files={"file": ("clip.mp4", small_video, "video/mp4")},
        data={"sample_fps": "3"},
    )

    assert replay.status_code == 202
    assert replay.json()["id"] == first["id"]
    assert replay.headers["idempotent-replayed"] == "true"
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert _stored_files(storage_dir) == files_after_first  # the replay's copy was removed
    with get_session_factory(api_settings)() as session:
        count = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.idempotency_key == "order-42", Job.id == uuid.UUID(first["id"]))
        )
    assert count == 1


def test_idempotency_key_is_per_tenant(client: TestClient, make_key: Headers, small_video: bytes) -> None:
    first = _submit(client, {**make_key(), "Idempotency-Key": "shared-key"}, small_video)
    second = _submit(client, {**make_key(), "Idempotency-Key": "shared-key"}, small_video)

    assert first["id"] != second["id"]


def test_list_jobs_pages_newest_first_with_cursor(
    client: TestClient, make_key: Headers, small_video: bytes
) -> None:
    headers = make_key()
    created = [_submit(client, headers, small_video, external_id=f"n{i}")["id"] for i in range(5)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/jobs", headers=headers, params=params).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == list(reversed(created))
    queued = client.get("/v1/jobs", headers=headers, params={"status": "queued", "limit": "100"}).json()
    assert len(queued["items"]) == 5
    by_external = client.get("/v1/jobs", headers=headers, params={"external_id": "n3"}).json()
    assert [item["id"] for item in by_external["items"]] == [created[3]]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "101"}, "invalid_limit"),
        ({"status": "done"}, "invalid_filter"),
        ({"status": "queued,"}, "invalid_filter"),
        ({"verdict": "FAKE"}, "invalid_filter"),
        ({"verdict": "maybe"}, "invalid_filter"),
        ({"media_type": "audio"}, "invalid_filter"),
        ({"created_from": "yesterday"}, "invalid_filter"),
        ({"created_to": "2026-02-30"}, "invalid_filter"),
        ({"created_to": "9999-12-31"}, "invalid_filter"),
        ({"created_from": "2026-12-08", "created_to": "2026-12-07"}, "invalid_filter"),
        ({"batch_id": "batch-1"}, "invalid_filter"),
        ({"external_id": "x" * 256}, "invalid_filter"),
        ({"external_id": ""}, "invalid_filter"),
        # Filters the route does not take are refused, not ignored.
        ({"verdicts": "fake"}, "unknown_parameter"),
        ({"sort": "score"}, "unknown_parameter"),
    ],
)
def test_list_jobs_bad_query_is_422(
    client: TestClient, make_key: Headers, params: dict[str, str], code: str
) -> None:
    response = client.get("/v1/jobs", headers=make_key(), params=params)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == code
    assert any(name in error["message"] for name in params)  # says which parameter


def _set_job(settings: Settings, job_id: str, **values: object) -> None:
    with get_session_factory(settings)() as session:
        session.execute(update(Job).where(Job.id == uuid.UUID(job_id)).values(**values))
        session.commit()


def _ids(client: TestClient, headers: dict[str, str], **params: str) -> list[str]:
    """Every job the filters pass, newest first, walked through pages of two."""
    seen: list[str] = []
    cursor = None
    while True:
        query = {**params, "limit": "2"} | ({"cursor": cursor} if cursor else {})
        response = client.get("/v1/jobs", headers=headers, params=query)
        assert response.status_code == 200, response.text
        seen += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return seen


def test_list_jobs_filters_by_verdict_status_media_type_dates_external_id_and_batch(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    fake_photo, real_video, failed, queued = (
        _submit(client, headers, small_video, external_id=f"triage-{i}")["id"] for i in range(4)
    )
    batch = client.post(
        "/v1/batches",
        headers=headers,
        json={"items": [{"source": f"s3://client-videos/triage-{i}.mp4"} for i in range(3)]},
    )
    assert batch.status_code == 202, batch.text
    batch_id = batch.json()["id"]
    in_batch = _ids(client, headers, batch_id=batch_id)
    # As workers would have left them; created on three days of January.
    day = "2026-01-{:02d}T{}+00:00".format
    scored = {"status": "succeeded", "score": 0.9, "threshold": 0.5}
    _set_job(
        api_settings, fake_photo, **scored, verdict="fake", media_type="image", created_at=day(10, "12:00")
    )
    _set_job(
        api_settings, real_video, **{**scored, "score": 0.1}, verdict="real", created_at=day(11, "08:00")
    )
    _set_job(api_settings, failed, status="failed", error_code="corrupt_video", created_at=day(12, "00:00"))
    _set_job(api_settings, in_batch[0], **scored, verdict="fake")
    _set_job(api_settings, in_batch[1], **{**scored, "score": 0.5}, verdict="inconclusive")

    everything = _ids(client, headers)
    assert len(everything) == 7 and set(everything) >= {fake_photo, real_video, failed, queued}
    assert _ids(client, headers, verdict="fake") == [in_batch[0], fake_photo]
    assert _ids(client, headers, verdict="fake,inconclusive") == [in_batch[0], in_batch[1], fake_photo]
    assert _ids(client, headers, verdict="real", status="succeeded") == [real_video]
    assert _ids(client, headers, verdict="real", status="failed") == []
    assert _ids(client, headers, status="failed") == [failed]
    assert set(_ids(client, headers, status="queued")) == {queued, in_batch[2]}
    assert _ids(client, headers, media_type="image") == [fake_photo]
    assert fake_photo not in _ids(client, headers, media_type="video")
    # A date alone covers its whole day; a date-time is an instant (UTC without an offset).
    assert _ids(client, headers, created_from="2026-01-10", created_to="2026-01-11") == [
        real_video,
        fake_photo,
    ]
    assert _ids(client, headers, created_to="2026-01-10") == [fake_photo]
    assert _ids(client, headers, created_from="2026-01-11T08:00:00Z", created_to="2026-01-12T00:00:00") == [
        failed,
        real_video,
    ]
    assert _ids(client, headers, created_from="2026-01-11T09:00:00+01:00", created_to="2026-01-11T08:59") == [
        real_video
    ]
    # A "+" of an offset sent unencoded arrives as a space, and is read as the "+" it was.
    unencoded = client.get(
        "/v1/jobs?created_from=2026-01-11T09:00:00+01:00&created_to=2026-01-11", headers=headers
    )
    assert [item["id"] for item in unencoded.json()["items"]] == [real_video]
    assert len(_ids(client, headers, created_from="2026-01-13")) == 4  # submitted today
    assert _ids(client, headers, external_id="triage-2") == [failed]
    assert _ids(client, headers, batch_id=batch_id) == in_batch
    assert _ids(client, headers, batch_id=batch_id, verdict="inconclusive") == [in_batch[1]]
    assert _ids(client, headers, batch_id=str(uuid.uuid4())) == []
    # Another tenant's filters see none of these.
    assert _ids(client, make_key(), batch_id=batch_id) == []


def test_results_pages_walk_frames_by_index(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = uuid.UUID(_submit(client, headers, small_video)["id"])
    with get_session_factory(api_settings)() as session:
        session.add_all(
            [Segment(job_id=job_id, segment_index=i, start_s=i, end_s=i + 1, status="done") for i in range(3)]
        )
        session.add_all(
            [
                Frame(
                    job_id=job_id,
                    segment_index=i // 4,
                    frame_index=i * 5,
                    t=i * 0.5,
                    score=0.25,
                    faces=[
                        {
                            "box": [1, 2, 3, 4],
                            "det_score": 0.99,
                            "track": 1,
                            "segment_track": 1,
                            "score": 0.25,
                        }
                    ],
                )
                for i in range(10)
            ]
        )
        session.add(Track(job_id=job_id, track_id=1, first_t=0.0, last_t=4.5, score=0.25, faces=10))
        session.commit()

    frames: list[int] = []
    cursor = None
    while True:
        params = {"limit": "4"} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"/v1/jobs/{job_id}/frames", headers=headers, params=params).json()
        frames += [item["index"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    segments = client.get(f"/v1/jobs/{job_id}/segments", headers=headers, params={"limit": "2"}).json()
    tracks = client.get(f"/v1/jobs/{job_id}/tracks", headers=headers).json()

    assert frames == [i * 5 for i in range(10)]
    assert [s["index"] for s in segments["items"]] == [0, 1] and segments["next_cursor"]
    assert tracks["items"] == [{"id": 1, "first_t": 0.0, "last_t": 4.5, "score": 0.25, "faces": 10}]
    first = client.get(f"/v1/jobs/{job_id}/frames", headers=headers, params={"limit": "1"}).json()["items"][0]
    assert first["faces"] == [{"box": [1.0, 2.0, 3.0, 4.0], "det_score": 0.99, "track": 1, "score": 0.25}]


def test_cancel_queued_job_then_again_is_idempotent(
    client: TestClient, make_key: Headers, small_video: bytes
) -> None:
    headers = make_key()
    job_id = _submit(client, headers, small_video)["id"]

    first = client.post(f"/v1/jobs/{job_id}/cancel", headers=headers)
    second = client.post(f"/v1/jobs/{job_id}/cancel", headers=headers)

    assert first.status_code == 200 and first.json()["status"] == "canceled"
    assert first.json()["finished_at"] is not None
    assert second.status_code == 200 and second.json()["status"] == "canceled"


def test_cancel_keeps_the_scored_segments_and_marks_the_job_partial(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = _submit(client, headers, small_video)["id"]
    assert client.get(f"/v1/jobs/{job_id}", headers=headers).json()["partial"] is False
    # Running: one of its two segments scored, the other in a worker's hands.
    with get_session_factory(api_settings)() as session:
        key = uuid.UUID(job_id)
        session.execute(
            update(Job).where(Job.id == key).values(status="processing", segments_total=2, segments_done=1)
        )
        session.add(Segment(job_id=key, segment_index=0, start_s=0, end_s=1, status="done", score=0.8))
        session.add(Segment(job_id=key, segment_index=1, start_s=1, end_s=2, status="running"))
        session.add(Frame(job_id=key, segment_index=0, frame_index=0, t=0.0, score=0.8, faces=[]))
        session.commit()

    canceled = client.post(f"/v1/jobs/{job_id}/cancel", headers=headers)

    assert canceled.status_code == 200, canceled.text
    for answer in (canceled.json(), client.get(f"/v1/jobs/{job_id}", headers=headers).json()):
        assert answer["status"] == "canceled" and answer["partial"] is True
        assert answer["progress"] == {"segments_done": 1, "segments_total": 2}
        assert answer["verdict"] is None and answer["score"] is None
    segments = client.get(f"/v1/jobs/{job_id}/segments", headers=headers).json()["items"]
    assert [(s["index"], s["status"], s["score"]) for s in segments] == [
        (0, "done", 0.8),
        (1, "canceled", None),
    ]
    frames = client.get(f"/v1/jobs/{job_id}/frames", headers=headers).json()["items"]
    assert [f["score"] for f in frames] == [0.8]
    # Canceled before anything was scored: nothing partial about it.
    untouched = _submit(client, headers, small_video, external_id="untouched")["id"]
    answer = client.post(f"/v1/jobs/{untouched}/cancel", headers=headers).json()
    assert answer["status"] == "canceled" and answer["partial"] is False


def test_cancel_finished_job_is_409(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    job_id = _submit(client, headers, small_video)["id"]
    with get_session_factory(api_settings)() as session:
        session.execute(
            update(Job).where(Job.id == uuid.UUID(job_id)).values(status="succeeded", verdict="real")
        )
        session.commit()

    response = client.post(f"/v1/jobs/{job_id}/cancel", headers=headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_finished"


def test_delete_job_removes_video_and_every_row(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings, storage_dir: Path
) -> None:
    headers = make_key()
    before = _stored_files(storage_dir)
    job_id = uuid.UUID(_submit(client, headers, small_video)["id"])
    with get_session_factory(api_settings)() as session:
        video_id = session.get_one(Job, job_id).video_id
        session.add(Segment(job_id=job_id, segment_index=0, start_s=0, end_s=1, status="done"))
        session.add(Frame(job_id=job_id, segment_index=0, frame_index=0, t=0.0, score=None, faces=[]))
        session.add(Track(job_id=job_id, track_id=1, first_t=0, last_t=1, score=0.5, faces=2))
        session.commit()

    response = client.delete(f"/v1/jobs/{job_id}", headers=headers)

    assert response.status_code == 204
    assert client.get(f"/v1/jobs/{job_id}", headers=headers).status_code == 404
    assert _stored_files(storage_dir) == before
    with get_session_factory(api_settings)() as session:
        for model in (Segment, Frame, Track):
            assert session.scalar(select(func.count()).select_from(model).where(model.job_id == job_id)) == 0
        assert session.get(Video, video_id) is None
        assert session.get(Job, job_id) is None


@pytest.mark.parametrize("job_id", ["not-a-uuid", str(uuid.uuid4())])
def test_unknown_job_is_404_on_every_route(client: TestClient, make_key: Headers, job_id: str) -> None:
    headers = make_key()
    calls = [
        client.get(f"/v1/jobs/{job_id}", headers=headers),
        client.get(f"/v1/jobs/{job_id}/segments", headers=headers),
        client.get(f"/v1/jobs/{job_id}/frames", headers=headers),
        client.get(f"/v1/jobs/{job_id}/tracks", headers=headers),
        client.post(f"/v1/jobs/{job_id}/cancel", headers=headers),
        client.delete(f"/v1/jobs/{job_id}", headers=headers),
    ]

    assert [r.status_code for r in calls] == [404] * 6
    assert {r.json()["error"]["code"] for r in calls} == {"job_not_found"}


def test_other_tenants_job_is_404_on_every_route(
    client: TestClient, make_key: Headers, small_video: bytes
) -> None:
    owner, stranger = make_key(), make_key()
    job_id = _submit(client, owner, small_video, external_id="private")["id"]

    calls = [
        client.get(f"/v1/jobs/{job_id}", headers=stranger),
        client.get(f"/v1/jobs/{job_id}/segments", headers=stranger),
        client.get(f"/v1/jobs/{job_id}/frames", headers=stranger),
        client.get(f"/v1/jobs/{job_id}/tracks", headers=stranger),
        client.post(f"/v1/jobs/{job_id}/cancel", headers=stranger),
        client.delete(f"/v1/jobs/{job_id}", headers=stranger),
    ]
    listed = client.get("/v1/jobs", headers=stranger, params={"external_id": "private"}).json()

    assert [r.status_code for r in calls] == [404] * 6
    assert listed["items"] == []
    assert client.get(f"/v1/jobs/{job_id}", headers=owner).json()["status"] == "queued"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_api_key"),
        ("Bearer dfs_nothing_here", "invalid_api_key"),
        ("Basic dXNlcjpwYXNz", "missing_api_key"),
    ],
)
def test_v1_routes_need_a_valid_key(client: TestClient, authorization: str | None, code: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    responses = [
        client.get("/v1/jobs", headers=headers),
        client.post("/v1/uploads", headers=headers, json={"size_bytes": 10}),
    ]

    for response in responses:
        assert response.status_code == 401
        assert response.json()["error"]["code"] == code
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("cache_s", "wait_s"),
    [(0.5, 0.55), (0.0, 0.0)],
    ids=["once-the-key-cache-expires", "at-once-without-a-key-cache"],
)
def test_revoked_key_is_refused(api_settings: Settings, cache_s: float, wait_s: float) -> None:
    from api.app import create_app
    from core.keys import create_api_key, revoke_api_key

    settings = api_settings.model_copy(update={"api_key_cache_s": cache_s})
    with TestClient(create_app(settings)) as client:
        with get_session_factory(settings)() as session:
            created = create_api_key(session, tenant_name=f"revoked-{uuid.uuid4().hex[:6]}")
            headers = {"Authorization": f"Bearer {created.key}"}
            assert client.get("/v1/jobs", headers=headers).status_code == 200
            assert revoke_api_key(session, prefix=created.record.prefix)
        # The process trusts its lookup for cache_s from the first request, then reads the key again.
        time.sleep(wait_s)
        response = client.get("/v1/jobs", headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
