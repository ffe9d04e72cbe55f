"""Jobs through the real platform: upload → poll → results, S3 sources, presigned uploads,
idempotency, cancel, delete and tenant isolation."""

from __future__ import annotations

import hashlib
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from core.models import Frame, Job, Segment, Track, Video
from tests.integration.platform.conftest import SOURCE_BUCKET, STORAGE_BUCKET
from tests.utils.media import FaceVideo, box_iou
from tests.utils.stack import Stack
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.integration


def _sources(keys: set[str]) -> set[str]:
    """The stored videos among a tenant's objects (beside each: its heatmaps and statistics)."""
    return {key for key in keys if key.endswith("/source")}


def test_upload_poll_succeeds_with_segments_frames_tracks(
    platform: Stack, two_segment_video: FaceVideo
) -> None:
    headers = platform.new_key()
    created = platform.submit(headers, two_segment_video.path, sample_fps="2", segment_seconds="1.5")

    job = platform.wait_job(headers, created["id"])

    assert job["status"] == "succeeded", job
    assert job["progress"] == {"segments_done": 2, "segments_total": 2}
    assert job["verdict"] in ("fake", "real") and 0.0 <= job["score"] <= 1.0
    assert job["model"]["trained"] is False and job["model_version"] == "0.0.0-test"
    assert job["attempts"] == 1 and job["error"] is None
    assert job["video"]["filename"] == two_segment_video.path.name
    assert (job["video"]["width"], job["video"]["height"], job["video"]["codec"]) == (320, 240, "h264")
    assert job["video"]["duration_s"] == pytest.approx(3.0, abs=0.1)
    assert job["started_at"] <= job["finished_at"]
    with platform.client(headers) as client:
        segments = client.get(f"/v1/jobs/{job['id']}/segments").json()["items"]
        frames = client.get(f"/v1/jobs/{job['id']}/frames", params={"limit": "500"}).json()["items"]
        tracks = client.get(f"/v1/jobs/{job['id']}/tracks").json()["items"]
    assert [(s["index"], s["status"], s["attempts"]) for s in segments] == [(0, "done", 1), (1, "done", 1)]
    assert [f["t"] for f in frames] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert {f["segment"] for f in frames} == {0, 1}
    # The face is where the generator put it, and one track follows it across both segments.
    for frame in frames:
        assert len(frame["faces"]) == 1
        truth = two_segment_video.face_boxes_at(frame["t"])[0]
        assert box_iou(frame["faces"][0]["box"], truth) > 0.5
    assert {face["track"] for frame in frames for face in frame["faces"]} == {tracks[0]["id"]}
    assert len(tracks) == 1 and tracks[0]["faces"] == 6
    assert (tracks[0]["first_t"], tracks[0]["last_t"]) == (0.0, 2.5)
    # Two segments, two analyze tasks.
    with platform.session() as session:
        task_ids = session.scalars(
            select(Segment.task_id).where(Segment.job_id == uuid.UUID(job["id"]))
        ).all()
    assert len(set(task_ids)) == 2 and None not in task_ids
    assert len(_sources(platform.tenant_keys(platform.tenant_id(headers)))) == 1


def test_readyz_sees_the_worker(platform: Stack) -> None:
    body = httpx.get(f"{platform.base_url}/readyz", timeout=10).json()

    assert body["status"] == "ready", body
    assert platform.node in body["checks"]["workers"]["names"]
    assert body["checks"]["webhook_dispatcher"]["ok"] is True  # the worker runs beat


def test_idempotent_resubmission_returns_the_same_job(
    platform: Stack, two_segment_video: FaceVideo
) -> None:
    headers = {**platform.new_key(), "Idempotency-Key": "upload-1"}
    first = platform.submit(headers, two_segment_video.path)
    second = platform.submit(headers, two_segment_video.path)
    platform.wait_job(headers, first["id"])
    third = platform.submit(headers, two_segment_video.path)
    conflict = platform.submit(headers, two_segment_video.path, expect=409, sample_fps="1")

    assert first["id"] == second["id"] == third["id"]
    assert third["status"] == "succeeded"
    assert conflict["error"]["code"] == "idempotency_key_reused"
    assert len(_sources(platform.tenant_keys(platform.tenant_id(headers)))) == 1
    with platform.session() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Job).where(Job.tenant_id == platform.tenant_id(headers))
            )
            == 1
        )


def test_s3_source_job_succeeds_and_delete_keeps_the_clients_object(
    platform: Stack, two_segment_video: FaceVideo
) -> None:
    headers = platform.new_key()
    key = f"incoming/{uuid.uuid4()}.mp4"
    platform.s3().put_object(Bucket=SOURCE_BUCKET, Key=key, Body=two_segment_video.path.read_bytes())

    with platform.client(headers) as client:
        created = client.post(
            "/v1/jobs", json={"source": f"s3://{SOURCE_BUCKET}/{key}", "external_id": "s3-1"}
        )
        missing = client.post("/v1/jobs", json={"source": f"s3://{SOURCE_BUCKET}/nope.mp4"})
        assert created.status_code == 202, created.text
        job = platform.wait_job(headers, created.json()["id"])
        deleted = client.delete(f"/v1/jobs/{job['id']}")

    assert job["status"] == "succeeded", job
    assert job["video"]["source"] == f"s3://{SOURCE_BUCKET}/{key}"
    assert job["external_id"] == "s3-1"
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "source_not_found"
    assert deleted.status_code == 204
    assert platform.s3().head_object(Bucket=SOURCE_BUCKET, Key=key)["ContentLength"] > 0


def test_presigned_upload_then_job_succeeds(platform: Stack, two_segment_video: FaceVideo) -> None:
    headers = platform.new_key()
    data = two_segment_video.path.read_bytes()
    with platform.client(headers) as client:
        slot = client.post("/v1/uploads", json={"size_bytes": len(data), "filename": "direct.mp4"}).json()
        assert slot["url"].startswith(platform.s3_endpoint), slot
        assert slot["send_api_key"] is False  # the signature is the credential: the key stays home
        early = client.post("/v1/jobs", json={"upload_id": slot["upload_id"]})
        put = httpx.put(slot["url"], content=data, headers=slot["headers"], timeout=30)
        created = client.post("/v1/jobs", json={"upload_id": slot["upload_id"]})
        assert created.status_code == 202, created.text
    job = platform.wait_job(headers, created.json()["id"])

    assert early.status_code == 409 and early.json()["error"]["code"] == "upload_incomplete"
    assert put.status_code == 200, put.text
    assert job["status"] == "succeeded", job
    assert job["video"]["filename"] == "direct.mp4"


def test_a_presigned_put_after_the_job_was_created_cannot_change_what_it_analyses(
    platform: Stack, two_segment_video: FaceVideo
) -> None:
    headers = platform.new_key()
    data = two_segment_video.path.read_bytes()
    swapped = data[: len(data) // 2] + bytes(len(data) - len(data) // 2)  # same size, other bytes
    with platform.client(headers) as client:
        slot = client.post("/v1/uploads", json={"size_bytes": len(data), "filename": "late.mp4"}).json()
        assert httpx.put(slot["url"], content=data, headers=slot["headers"], timeout=30).status_code == 200
        created = client.post("/v1/jobs", json={"upload_id": slot["upload_id"]})
        assert created.status_code == 202, created.text
        # The presigned URL is still valid: storage accepts a second PUT of the same size.
        late = httpx.put(slot["url"], content=swapped, headers=slot["headers"], timeout=30)
    assert late.status_code == 200, late.text
    with platform.session() as session:
        key = session.get_one(Job, uuid.UUID(created.json()["id"])).video.storage_key
    assert key is not None
    stored = platform.s3().get_object(Bucket=STORAGE_BUCKET, Key=platform.settings.storage_prefix + key)
    assert stored["Body"].read() == data

    job = platform.wait_job(headers, created.json()["id"])
    assert job["status"] == "succeeded", job
    with platform.session() as session:
        video = session.get_one(Job, uuid.UUID(job["id"])).video
        assert video.sha256 == hashlib.sha256(data).hexdigest()
        assert video.size_bytes == len(data)


def test_cancel_queued_job_is_never_analysed(platform: Stack, two_segment_video: FaceVideo) -> None:
    headers = platform.new_key()
    platform.pause_queue("probe")
    try:
        job_id = platform.submit(headers, two_segment_video.path)["id"]
        with platform.client(headers) as client:
            canceled = client.post(f"/v1/jobs/{job_id}/cancel")
    finally:
        platform.resume_queue("probe")
    # Let the worker take the message (and drop it): a job after it in the queue finishes first.
    other_headers = platform.new_key()
    other = platform.submit(other_headers, two_segment_video.path)
    platform.wait_job(other_headers, other["id"])

    with platform.client(headers) as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert job["status"] == "canceled" and job["progress"]["segments_total"] is None
    assert job["error"]["code"] == "canceled"


def test_cancel_processing_job_drops_segment_results(
    platform: Stack, two_segment_video: FaceVideo
) -> None:
    headers = platform.new_key()
    platform.pause_queue("analyze")
    try:
        job_id = platform.submit(headers, two_segment_video.path, segment_seconds="1.5")["id"]
        with platform.client(headers) as client:
            planned = wait_for(
                lambda: (
                    (job := client.get(f"/v1/jobs/{job_id}").json())["progress"]["segments_total"] and job
                ),
                timeout_s=60,
                what="the job to be planned",
            )
            assert planned["status"] == "processing" and planned["progress"]["segments_total"] == 2, planned
            canceled = client.post(f"/v1/jobs/{job_id}/cancel")
    finally:
        platform.resume_queue("analyze")
    other_headers = platform.new_key()
    other = platform.submit(other_headers, two_segment_video.path)
    platform.wait_job(other_headers, other["id"])

    assert canceled.json()["status"] == "canceled"
    with platform.session() as session:
        job = session.get_one(Job, uuid.UUID(job_id))
        frames = session.scalar(select(func.count()).select_from(Frame).where(Frame.job_id == job.id))
    assert job.status == "canceled" and job.segments_done == 0 and frames == 0


def test_delete_removes_the_object_and_every_row(platform: Stack, two_segment_video: FaceVideo) -> None:
    headers = platform.new_key()
    job_id = platform.submit(headers, two_segment_video.path, segment_seconds="1.5")["id"]
    platform.wait_job(headers, job_id)
    tenant = platform.tenant_id(headers)
    assert len(_sources(platform.tenant_keys(tenant))) == 1
    with platform.session() as session:
        video_id = session.get_one(Job, uuid.UUID(job_id)).video_id
        assert (
            session.scalar(select(func.count()).select_from(Frame).where(Frame.job_id == uuid.UUID(job_id)))
            > 0
        )

    with platform.client(headers) as client:
        deleted = client.delete(f"/v1/jobs/{job_id}")
        again = client.get(f"/v1/jobs/{job_id}")

    assert deleted.status_code == 204
    assert again.status_code == 404
    assert platform.tenant_keys(tenant) == set()
    with platform.session() as session:
        for model in (Segment, Frame, Track):
            count = session.scalar(
                select(func.count()).select_from(model).where(model.job_id == uuid.UUID(job_id))
            )
            assert count == 0, model.__name__
        assert session.get(Job, uuid.UUID(job_id)) is None
        assert session.get(Video, video_id) is None
    assert platform.s3().head_bucket(Bucket=STORAGE_BUCKET)  # the bucket itself stays


def test_tenant_isolation_on_every_route(platform: Stack, two_segment_video: FaceVideo) -> None:
    owner, stranger = platform.new_key(), platform.new_key()
    job_id = platform.submit(
        {**owner, "Idempotency-Key": "same"}, two_segment_video.path, external_id="owner-only"
    )["id"]
    platform.wait_job(owner, job_id)
    with platform.client(owner) as client:
        slot = client.post("/v1/uploads", json={"size_bytes": 10}).json()

    with platform.client(stranger) as client:
        answers = {
            "get": client.get(f"/v1/jobs/{job_id}"),
            "segments": client.get(f"/v1/jobs/{job_id}/segments"),
            "frames": client.get(f"/v1/jobs/{job_id}/frames"),
            "tracks": client.get(f"/v1/jobs/{job_id}/tracks"),
            "cancel": client.post(f"/v1/jobs/{job_id}/cancel"),
            "delete": client.delete(f"/v1/jobs/{job_id}"),
            "upload-job": client.post("/v1/jobs", json={"upload_id": slot["upload_id"]}),
        }
        listed = client.get("/v1/jobs", params={"external_id": "owner-only"}).json()["items"]
        everything = client.get("/v1/jobs").json()["items"]
    own = platform.submit({**stranger, "Idempotency-Key": "same"}, two_segment_video.path)

    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 404)
    assert all("error" in r.json() for r in answers.values())
    assert listed == [] and everything == []
    assert own["id"] != job_id  # the same Idempotency-Key in another tenant is another job
    with platform.client(owner) as client:
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
        assert len(client.get(f"/v1/jobs/{job_id}/frames").json()["items"]) > 0
