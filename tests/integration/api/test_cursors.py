"""Page cursors are opaque but not trusted: whatever a client sends as ``cursor``, on every paged
route, is either one the route wrote or a typed 422 ``invalid_cursor``, never a database error."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.config import Settings
from core.db import get_session_factory
from core.keys import create_api_key

SOME_ID = str(uuid.uuid4())


def _cursor(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


NOT_CURSORS = [
    "not-a-cursor",
    "é",
    _cursor("[true]")[:-1] + "!",
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not JSON
    _cursor({"a": 1}),
    _cursor([]),
    _cursor([1, 2, 3]),
]
# Routes keyed by (created_at, id), newest first.
FORGED_TIME_CURSORS = [
    _cursor(["2026-01-01T00:00:00-23:59", SOME_ID]),  # an offset PostgreSQL refuses
    _cursor(["2026-01-01T00:00:00+23:59", SOME_ID]),
    _cursor(["2026-01-01T05:30:00+05:30", SOME_ID]),  # pages write UTC only
    _cursor(["2026-01-01T00:00:00", SOME_ID]),  # no offset
    _cursor(["2026-13-01T00:00:00+00:00", SOME_ID]),
    _cursor([True, SOME_ID]),
    _cursor([1767225600, SOME_ID]),
    _cursor([None, SOME_ID]),
    _cursor(["2026-01-01T00:00:00+00:00", True]),
    _cursor(["2026-01-01T00:00:00+00:00", 5]),
    _cursor(["2026-01-01T00:00:00+00:00", [SOME_ID]]),
    _cursor(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
]
# Result routes keyed by one integer index.
FORGED_INDEX_CURSORS = [
    _cursor([True]),
    _cursor([False]),
    _cursor([1.5]),
    _cursor([2**31]),  # past the column's integer range
    _cursor([-(2**31) - 1]),
    _cursor([10**40]),
    _cursor(["3"]),
    _cursor([None]),
    _cursor([[1]]),
    _cursor([{"i": 1}]),
]


@pytest.fixture(scope="module")
def owner(api_settings: Settings) -> dict[str, str]:
    with get_session_factory(api_settings)() as session:
        created = create_api_key(session, tenant_name=f"cursors-{uuid.uuid4().hex[:8]}")
    return {"Authorization": f"Bearer {created.key}"}


@pytest.fixture(scope="module")
def job_id(client: TestClient, owner: dict[str, str], small_video: bytes) -> str:
    response = client.post("/v1/jobs", headers=owner, files={"file": ("clip.mp4", small_video, "video/mp4")})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def batch_id(client: TestClient, owner: dict[str, str]) -> str:
    response = client.post(
        "/v1/batches", json={"items": [{"source": "s3://client-videos/a.mp4"}]}, headers=owner
    )
    assert response.status_code in (201, 202), response.text
    return str(response.json()["id"])


def _time_routes(job_id: str, batch_id: str) -> list[str]:
    return ["/v1/jobs", "/v1/batches", f"/v1/jobs/{job_id}/deliveries", f"/v1/batches/{batch_id}/deliveries"]


def _index_routes(job_id: str) -> list[str]:
    return [f"/v1/jobs/{job_id}/{kind}" for kind in ("segments", "frames", "tracks")]


def _assert_invalid_cursor(client: TestClient, headers: dict[str, str], path: str, cursor: str) -> None:
    response = client.get(path, headers=headers, params={"cursor": cursor})
    assert response.status_code == 422, (path, cursor, response.text)
    assert response.json()["error"]["code"] == "invalid_cursor", (path, cursor, response.text)


@pytest.mark.parametrize("cursor", FORGED_TIME_CURSORS + NOT_CURSORS)
def test_forged_time_cursors_are_422(
    client: TestClient, owner: dict[str, str], job_id: str, batch_id: str, cursor: str
) -> None:
    for path in _time_routes(job_id, batch_id):
        _assert_invalid_cursor(client, owner, path, cursor)


@pytest.mark.parametrize("cursor", FORGED_INDEX_CURSORS + NOT_CURSORS)
def test_forged_index_cursors_are_422(
    client: TestClient, owner: dict[str, str], job_id: str, cursor: str
) -> None:
    for path in _index_routes(job_id):
        _assert_invalid_cursor(client, owner, path, cursor)


def test_cursors_of_the_written_kind_still_page(
    client: TestClient, owner: dict[str, str], job_id: str, batch_id: str
) -> None:
    # Any UTC time and any integer in the column's range is a position, whoever wrote it.
    for path in _time_routes(job_id, batch_id):
        for written in (
            "2999-01-01T00:00:00+00:00",
            "0001-01-01T00:00:00+00:00",
            "9999-12-31T23:59:59.999999+00:00",
        ):
            response = client.get(path, headers=owner, params={"cursor": _cursor([written, SOME_ID])})
            assert response.status_code == 200, (path, response.text)
    for path in _index_routes(job_id):
        for index in (-(2**31), -1, 0, 2**31 - 1):
            response = client.get(path, headers=owner, params={"cursor": _cursor([index])})
            assert response.status_code == 200, (path, response.text)
