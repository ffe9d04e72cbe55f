"""Webhook and batch routes in-process: refused receivers and sources, typed validation errors,
the per-tenant limit on jobs in flight (429 with Retry-After), tenant isolation, idempotency."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from core.config import Settings
from core.db import get_session_factory
from core.models import Job, Video, WebhookEndpoint
from core.webhooks import decrypt_secret
from tests.integration.api.conftest import IN_FLIGHT_LIMIT

Headers = Callable[[], dict[str, str]]

BLOCKED_RECEIVERS = [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://localhost:9000/hook", "this machine"),
    ("http://[fd00::5]/hook", "private"),
]


@pytest.mark.parametrize(("url", "reason"), BLOCKED_RECEIVERS)
def test_endpoint_to_an_internal_address_is_refused(
    hooks_client: TestClient, new_key: Headers, url: str, reason: str
) -> None:
    response = hooks_client.post("/v1/webhooks", json={"url": url}, headers=new_key())

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "address_not_allowed"
    assert reason in response.json()["error"]["message"]
    # The switch that allows private and loopback receivers is named; it never allows metadata.
    assert ("WEBHOOK_ALLOW_PRIVATE=true" in response.json()["error"]["message"]) == (reason != "metadata")


@pytest.mark.parametrize(("url", "reason"), BLOCKED_RECEIVERS)
def test_job_callback_to_an_internal_address_is_refused(
    hooks_client: TestClient, new_key: Headers, url: str, reason: str
) -> None:
    response = hooks_client.post(
        "/v1/jobs", json={"source": "s3://client-videos/a.mp4", "callback_url": url}, headers=new_key()
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "address_not_allowed"


@pytest.mark.parametrize(("url", "_reason"), BLOCKED_RECEIVERS)
def test_batch_callback_to_an_internal_address_is_refused(
    hooks_client: TestClient, new_key: Headers, url: str, _reason: str
) -> None:
    body = {"items": [{"source": "s3://client-videos/a.mp4"}], "callback_url": url}
    response = hooks_client.post("/v1/batches", json=body, headers=new_key())

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "address_not_allowed"


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("https://10.0.0.1/video.mp4", "address_not_allowed"),
        ("https://localhost/video.mp4", "address_not_allowed"),
        ("https://169.254.169.254/latest/meta-data", "address_not_allowed"),
        ("http://example.com/video.mp4", "invalid_source"),
        ("ftp://example.com/video.mp4", "invalid_source"),
        ("https://user:secret@example.com/video.mp4", "invalid_url"),
    ],
)
def test_single_job_https_source_is_guarded_like_batch_items(
    hooks_client: TestClient, new_key: Headers, hooks_api_settings: Settings, source: str, code: str
) -> None:
    headers = new_key()
    response = hooks_client.post("/v1/jobs", json={"source": source}, headers=headers)
    batch = hooks_client.post("/v1/batches", json={"items": [{"source": source}]}, headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert batch.json()["error"]["code"] == code
    with get_session_factory(hooks_api_settings)() as session:
        stored = session.scalar(select(func.count()).select_from(Video).where(Video.source_uri == source))
    assert stored == 0


@pytest.fixture(scope="module")
def private_allowed_client(hooks_api_settings: Settings) -> Iterator[TestClient]:
    settings = hooks_api_settings.model_copy(update={"webhook_allow_private": True})
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    "host", ["[fd20:ce::254]", "[fe80::a9fe:a9fe]", "169.254.0.23", "[::a9fe:a9fe]", "[::ffff:0:a9fe:a9fe]"]
)
def test_metadata_and_link_local_stay_refused_with_private_allowed(
    private_allowed_client: TestClient, new_key: Headers, host: str
) -> None:
    headers = new_key()
    endpoint = private_allowed_client.post(
        "/v1/webhooks", json={"url": f"http://{host}/hook"}, headers=headers
    )
    job = private_allowed_client.post("/v1/jobs", json={"source": f"https://{host}/v.mp4"}, headers=headers)
    private = private_allowed_client.post(
        "/v1/webhooks", json={"url": "http://10.1.2.3/hook"}, headers=headers
    )

    for refused in (endpoint, job):
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "address_not_allowed"
        assert "WEBHOOK_ALLOW_PRIVATE" not in refused.json()["error"]["message"]
    assert private.status_code == 201, private.text  # the switch is on: private receivers pass


def test_single_job_accepts_a_public_https_source(hooks_client: TestClient, new_key: Headers) -> None:
    response = hooks_client.post(
        "/v1/jobs", json={"source": "HTTPS://cdn.example.com/clips/evening%20news.mp4"}, headers=new_key()
    )

    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued"
    assert job["video"]["source"] == "https://cdn.example.com/clips/evening%20news.mp4"
    assert job["video"]["filename"] == "evening news.mp4"


def test_endpoint_with_a_name_that_does_not_resolve_is_refused(
    hooks_client: TestClient, new_key: Headers
) -> None:
    response = hooks_client.post("/v1/webhooks", json={"url": "https://hooks.invalid/x"}, headers=new_key())

    assert response.status_code == 422 and response.json()["error"]["code"] == "dns_failed"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ftp://example.com/x"}, "invalid_url"),
        ({"url": "https://example.com/x", "event_types": ["job.exploded"]}, "validation_error"),
        ({"url": "https://example.com/x", "event_types": []}, "validation_error"),
        ({"url": "https://example.com/x", "secret": "mine"}, "validation_error"),
    ],
)
def test_endpoint_validation_errors_are_typed(
    hooks_client: TestClient, new_key: Headers, body: dict[str, object], code: str
) -> None:
    response = hooks_client.post("/v1/webhooks", json=body, headers=new_key())

    assert response.status_code == 422 and response.json()["error"]["code"] == code


def test_endpoint_secret_is_stored_encrypted_and_shown_once(
    hooks_client: TestClient, new_key: Headers, hooks_api_settings: Settings
) -> None:
    headers = new_key()
    # A literal public address: accepted without DNS, and no traffic is sent by this test.
    created = hooks_client.post("/v1/webhooks", json={"url": "https://93.184.216.34/hook"}, headers=headers)
    endpoint_id = created.json()["id"]
    shown = hooks_client.get(f"/v1/webhooks/{endpoint_id}", headers=headers).json()
    foreign = hooks_client.get(f"/v1/webhooks/{endpoint_id}", headers=new_key())
    with get_session_factory(hooks_api_settings)() as session:
        stored = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.id == uuid.UUID(endpoint_id)))
        assert stored is not None
        encrypted = stored.secret_encrypted
    deleted = hooks_client.delete(f"/v1/webhooks/{endpoint_id}", headers=headers)
    gone = hooks_client.get(f"/v1/webhooks/{endpoint_id}", headers=headers)

    assert created.status_code == 201
    secret = created.json()["secret"]
    assert "secret" not in shown and shown["event_types"] == [
        "job.succeeded",
        "job.failed",
        "job.canceled",
        "batch.completed",
        "job.reviewed",
    ]
    assert secret not in encrypted and secret.removeprefix("whsec_") not in encrypted
    assert (
        decrypt_secret(
            encrypted, key=hooks_api_settings.webhook_secrets_key, context=f"endpoint:{endpoint_id}"
        )
        == secret
    )
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "endpoint_not_found"
    assert deleted.status_code == 204 and gone.status_code == 404


def test_callback_secret_is_stable_until_rotated(hooks_client: TestClient, new_key: Headers) -> None:
    headers = new_key()
    first = hooks_client.get("/v1/webhooks/callback-secret", headers=headers).json()
    again = hooks_client.get("/v1/webhooks/callback-secret", headers=headers).json()
    rotated = hooks_client.post("/v1/webhooks/callback-secret/rotate", headers=headers).json()
    after = hooks_client.get("/v1/webhooks/callback-secret", headers=headers).json()
    other = hooks_client.get("/v1/webhooks/callback-secret", headers=new_key()).json()

    assert first["secret"] == again["secret"] and first["secret"].startswith("whsec_")
    assert rotated["secret"] != first["secret"] and after["secret"] == rotated["secret"]
    assert other["secret"] not in (first["secret"], rotated["secret"])


@pytest.mark.parametrize(
    ("item", "code"),
    [
        ({"source": "https://10.0.0.1/video.mp4"}, "address_not_allowed"),
        ({"source": "https://169.254.169.254/latest/meta-data"}, "address_not_allowed"),
        ({"source": "https://localhost/video.mp4"}, "address_not_allowed"),
        ({"source": "http://example.com/video.mp4"}, "invalid_source"),
        ({"source": "s3://other-bucket/a.mp4"}, "source_not_allowed"),
        ({"source": "s3://client-videos/"}, "invalid_source"),
        ({"source": "file:///etc/passwd"}, "invalid_source"),
    ],
)
def test_bad_batch_items_are_refused_before_anything_is_stored(
    hooks_client: TestClient, new_key: Headers, hooks_api_settings: Settings, item: dict[str, str], code: str
) -> None:
    headers = new_key()
    body = {"items": [{"source": "s3://client-videos/ok.mp4"}, item]}

    response = hooks_client.post("/v1/batches", json=body, headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["error"] == {"code": code, "message": response.json()["error"]["message"]}
    assert response.json()["error"]["message"].startswith("items[1]:")
    assert hooks_client.get("/v1/batches", headers=headers).json()["items"] == []


@pytest.mark.parametrize(
    ("content", "content_type", "code", "status"),
    [
        ("url\nhttps://example.com/a.mp4\n", "text/csv", "invalid_manifest", 422),
        ("source,external_id,extra\ns3://client-videos/a.mp4,a,b\n", "text/csv", "invalid_manifest", 422),
        ("source\n", "text/csv", "empty_manifest", 422),
        (
            '{"source": "s3://client-videos/a.mp4"}\nnot json\n',
            "application/x-ndjson",
            "invalid_manifest",
            422,
        ),
        ('["s3://client-videos/a.mp4"]\n', "application/x-ndjson", "invalid_manifest", 422),
        ('{"items": []}', "application/json", "validation_error", 422),
        (
            '{"items": [{"source": "s3://client-videos/a.mp4"}], "priority": 0}',
            "application/json",
            "validation_error",
            422,
        ),
        ("source\ns3://client-videos/a.mp4\n", "text/plain", "unsupported_content_type", 415),
        (
            "\n".join(["source"] + [f"s3://client-videos/{i}.mp4" for i in range(9)]),
            "text/csv",
            "too_many_items",
            413,
        ),
    ],
)
def test_bad_manifests_are_typed_errors(
    hooks_client: TestClient, new_key: Headers, content: str, content_type: str, code: str, status: int
) -> None:
    response = hooks_client.post(
        "/v1/batches", content=content.encode(), headers={**new_key(), "Content-Type": content_type}
    )

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_jobs_in_flight_past_the_limit_answer_429_with_retry_after(
    hooks_client: TestClient, new_key: Headers, small_video: bytes, hooks_api_settings: Settings
) -> None:
    headers = new_key()
    upload = {"file": ("clip.mp4", small_video, "video/mp4")}
    items = [
        {"source": f"s3://client-videos/{i}.mp4", "external_id": f"x{i}"} for i in range(IN_FLIGHT_LIMIT - 1)
    ]
    first = hooks_client.post("/v1/batches", json={"items": items}, headers=headers)
    one_more = hooks_client.post("/v1/jobs", files=upload, headers=headers)
    stored_before = sorted(hooks_api_settings.storage_dir.rglob("*"))
    over_job = hooks_client.post("/v1/jobs", files=upload, headers=headers)
    stored_after = sorted(hooks_api_settings.storage_dir.rglob("*"))
    over_batch = hooks_client.post(
        "/v1/batches", json={"items": [{"source": "s3://client-videos/q.mp4"}]}, headers=headers
    )
    too_big = hooks_client.post(
        "/v1/batches",
        json={"items": [{"source": f"s3://client-videos/{i}.mp4"} for i in range(IN_FLIGHT_LIMIT + 1)]},
        headers=new_key(),
    )
    other_tenant = hooks_client.post(
        "/v1/batches", json={"items": [{"source": "s3://client-videos/q.mp4"}]}, headers=new_key()
    )
    canceled = hooks_client.post(f"/v1/batches/{first.json()['id']}/cancel", headers=headers)
    after_cancel = hooks_client.post("/v1/jobs", files=upload, headers=headers)

    assert first.status_code == 202 and one_more.status_code == 202, (first.text, one_more.text)
    for refused in (over_job, over_batch):
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "17"
        assert refused.json()["error"]["code"] == "too_many_jobs_in_flight"
        assert f"the limit is {IN_FLIGHT_LIMIT}" in refused.json()["error"]["message"]
    assert stored_after == stored_before  # the refused upload left nothing in storage
    assert too_big.status_code == 422 and too_big.json()["error"]["code"] == "batch_exceeds_limit"
    assert other_tenant.status_code == 202  # the limit is per tenant
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert canceled.json()["counts"]["canceled"] == IN_FLIGHT_LIMIT - 1
    assert after_cancel.status_code == 202


def test_batch_items_are_backlog_priority_and_isolated_per_tenant(
    hooks_client: TestClient, new_key: Headers, hooks_api_settings: Settings
) -> None:
    headers = new_key()
    body = {
        "items": [
            {"source": "s3://client-videos/a.mp4", "external_id": "a"},
            {"source": "https://example.com/v/b%20c.mp4"},
        ]
    }
    created = hooks_client.post("/v1/batches", json=body, headers={**headers, "Idempotency-Key": "b-1"})
    replay = hooks_client.post("/v1/batches", json=body, headers={**headers, "Idempotency-Key": "b-1"})
    changed = hooks_client.post(
        "/v1/batches", json={**body, "name": "other"}, headers={**headers, "Idempotency-Key": "b-1"}
    )
    batch_id = created.json()["id"]
    stranger = new_key()
    foreign = [
        hooks_client.get(f"/v1/batches/{batch_id}", headers=stranger),
        hooks_client.get(f"/v1/batches/{batch_id}/results", headers=stranger),
        hooks_client.post(f"/v1/batches/{batch_id}/cancel", headers=stranger),
        hooks_client.get(f"/v1/batches/{batch_id}/deliveries", headers=stranger),
    ]
    with get_session_factory(hooks_api_settings)() as session:
        jobs = list(
            session.scalars(select(Job).where(Job.batch_id == uuid.UUID(batch_id)).order_by(Job.batch_index))
        )

    assert created.status_code == 202 and replay.status_code == 202
    assert replay.json()["id"] == batch_id and replay.headers["Idempotent-Replayed"] == "true"
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "idempotency_key_reused"
    assert [(job.batch_index, job.priority, job.external_id) for job in jobs] == [
        (0, hooks_api_settings.batch_priority, "a"),
        (1, hooks_api_settings.batch_priority, None),
    ]
    assert (
        jobs[1].video.source_uri == "https://example.com/v/b%20c.mp4" and jobs[1].video.filename == "b c.mp4"
    )
    assert all(response.status_code == 404 for response in foreign)
    assert all(response.json()["error"]["code"] == "batch_not_found" for response in foreign)
