"""A batch's jobs are built like a single job's: an uploaded picture is an image job either way,
and an item whose container is not known yet is a video until the probe says otherwise."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from core.config import Settings
from core.db import get_session_factory
from core.models import Job
from tests.utils.images import astronaut, encode

Headers = Callable[..., dict[str, str]]


def _upload(client: TestClient, headers: dict[str, str], content: bytes, filename: str) -> str:
    reserve = {"size_bytes": len(content), "filename": filename}
    slot = client.post("/v1/uploads", headers=headers, json=reserve)
    assert slot.status_code == 201, slot.text
    put = client.put(slot.json()["url"], headers={**headers, **slot.json()["headers"]}, content=content)
    assert put.status_code == 200, put.text
    return str(slot.json()["upload_id"])


def test_batch_jobs_get_their_media_type_like_a_single_job(
    client: TestClient, make_key: Headers, small_video: bytes, api_settings: Settings
) -> None:
    headers = make_key()
    picture = encode(Image.fromarray(astronaut()), "JPEG", quality=80)
    single = client.post(
        "/v1/jobs", headers=headers, json={"upload_id": _upload(client, headers, picture, "single.jpg")}
    )
    assert single.status_code == 202, single.text
    items = [
        {"upload_id": _upload(client, headers, picture, "face.jpg")},
        {"upload_id": _upload(client, headers, small_video, "clip.mp4")},
        {"source": "s3://client-videos/later/unknown.mp4"},
    ]
    created = client.post("/v1/batches", headers=headers, json={"items": items})
    assert created.status_code == 202, created.text

    with get_session_factory(api_settings)() as session:
        single_type = session.scalar(select(Job.media_type).where(Job.id == uuid.UUID(single.json()["id"])))
        batch_types = session.scalars(
            select(Job.media_type)
            .where(Job.batch_id == uuid.UUID(created.json()["id"]))
            .order_by(Job.batch_index)
        ).all()
    assert single.json()["media_type"] == single_type == "image"
    assert batch_types == ["image", "video", "video"]
