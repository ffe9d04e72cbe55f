"""Webhooks through the real platform to a real loopback receiver: signatures checked with the
``standardwebhooks`` library, retries with every attempt logged, Retry-After, 410, redelivery,
and the address guard at send time."""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook, WebhookVerificationError

from core.models import WebhookDelivery
from core.redis import broker_key, redis_client
from lifecycle.outbox import DISPATCHER_HEARTBEAT_KEY
from tests.integration.conftest import RETRY_SCHEDULE_S
from tests.utils.media import FaceVideo, make_bad_media
from tests.utils.receiver import Answer, Receiver
from tests.utils.stack import Stack
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.integration


def _callback_secret(client: httpx.Client) -> str:
    response = client.get("/v1/webhooks/callback-secret")
    assert response.status_code == 200, response.text
    return str(response.json()["secret"])


def _deliveries(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/jobs/{job_id}/deliveries")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def _wait_deliveries(
    client: httpx.Client, job_id: str, *, count: int, timeout_s: float = 60.0
) -> list[dict[str, Any]]:
    """The job's deliveries once ``count`` of them exist and none is pending any more."""

    def settled() -> list[dict[str, Any]] | None:
        items = _deliveries(client, job_id)
        done = len(items) == count and all(item["status"] != "pending" for item in items)
        return items if done else None

    return list(wait_for(settled, timeout_s=timeout_s, what=f"{count} settled deliveries of job {job_id}"))


def _wait_sweeps(stack: Stack, *, after: float, count: int = 2) -> None:
    """Waits until ``count`` runs of the periodic dispatcher have ended after ``after`` (each run
    leaves its heartbeat, a timestamp, when it ends): whatever was due by then was sent."""
    client = redis_client(stack.settings)
    seen: set[float] = set()

    def swept() -> bool:
        raw = client.get(broker_key(stack.settings, DISPATCHER_HEARTBEAT_KEY))
        if raw is not None and float(raw) > after:
            seen.add(float(raw))
        return len(seen) >= count

    try:
        wait_for(swept, timeout_s=30, what=f"{count} dispatcher runs", interval_s=0.05)
    finally:
        client.close()


def test_job_events_reach_callback_and_endpoint_signed(
    hooks_platform: Stack, receiver: Receiver, short_clip: FaceVideo
) -> None:
    headers = hooks_platform.new_key()
    callback = receiver.script(f"/cb/{uuid.uuid4().hex}", [Answer(200)])
    endpoint_url = receiver.script(f"/ep/{uuid.uuid4().hex}", [Answer(204)])
    with hooks_platform.client(headers) as client:
        callback_secret = _callback_secret(client)
        registered = client.post(
            "/v1/webhooks", json={"url": endpoint_url, "event_types": ["job.succeeded", "job.failed"]}
        )
        listed = client.get("/v1/webhooks").json()["items"]
        assert registered.status_code == 201, registered.text
        endpoint = registered.json()
        job = hooks_platform.submit(
            headers, short_clip.path, callback_url=callback, external_id="clip-signed"
        )
        finished = hooks_platform.wait_job(headers, job["id"])
        deliveries = _wait_deliveries(client, job["id"], count=2)

    (callback_request,) = receiver.wait_for(callback.removeprefix(receiver.base_url), 1)
    (endpoint_request,) = receiver.wait_for(endpoint_url.removeprefix(receiver.base_url), 1)
    # The reference implementation, not the service's own code, checks the signatures.
    payload = Webhook(callback_secret).verify(callback_request.body, callback_request.headers)
    assert Webhook(endpoint["secret"]).verify(endpoint_request.body, endpoint_request.headers) == payload
    with pytest.raises(WebhookVerificationError):
        Webhook(callback_secret).verify(endpoint_request.body, endpoint_request.headers)
    assert finished["status"] == "succeeded"
    assert payload["type"] == "job.succeeded"
    assert payload["data"] == {
        "job_id": job["id"],
        "status": "succeeded",
        "verdict": finished["verdict"],
        "verdict_label": finished["verdict_label"],
        "score": finished["score"],
        "external_id": "clip-signed",
        "batch_id": None,
    }
    assert callback_request.headers["content-type"] == "application/json"
    assert callback_request.headers["webhook-signature"].startswith("v1,")
    # The secret is shown once: never in listings.
    assert endpoint["secret"].startswith("whsec_") and endpoint["secret_hint"] == endpoint["secret"][:10]
    assert [item["id"] for item in listed] == [endpoint["id"]] and "secret" not in listed[0]
    by_destination = {item["destination"]: item for item in deliveries}
    assert set(by_destination) == {"callback", "endpoint"}
    assert by_destination["endpoint"]["endpoint_id"] == endpoint["id"]
    assert by_destination["callback"]["webhook_id"] == callback_request.headers["webhook-id"]
    for item, status in ((by_destination["callback"], 200), (by_destination["endpoint"], 204)):
        assert item["status"] == "succeeded" and item["attempts"] == 1
        (attempt,) = item["attempt_log"]
        assert attempt["status_code"] == status and attempt["error_code"] is None
        assert attempt["remote_address"] == "127.0.0.1" and attempt["duration_ms"] >= 0
        assert attempt["next_attempt_at"] is None


def test_three_failures_then_success_logs_four_attempts(
    hooks_platform: Stack, receiver: Receiver, short_clip: FaceVideo
) -> None:
    headers = hooks_platform.new_key()
    path = f"/cb/{uuid.uuid4().hex}"
    callback = receiver.script(path, [Answer(500), Answer(502), Answer(500, body=b"still down"), Answer(200)])
    with hooks_platform.client(headers) as client:
        secret = _callback_secret(client)
        job = hooks_platform.submit(headers, short_clip.path, callback_url=callback)
        hooks_platform.wait_job(headers, job["id"])
        (delivery,) = _wait_deliveries(client, job["id"], count=1)
        time.sleep(3 * max(RETRY_SCHEDULE_S))  # nothing more may arrive after the success

    requests = receiver.requests(path)
    assert len(requests) == 4
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 4
    assert delivery["last_status_code"] == 200 and delivery["last_error"] is None
    log = delivery["attempt_log"]
    assert [a["attempt"] for a in log] == [1, 2, 3, 4]
    assert [a["status_code"] for a in log] == [500, 502, 500, 200]
    assert [a["error_code"] for a in log] == ["http_error", "http_error", "http_error", None]
    assert all(a["next_attempt_at"] is not None for a in log[:3]) and log[3]["next_attempt_at"] is None
    # One webhook-id for every attempt (receivers deduplicate on it), each attempt signed afresh.
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    for request in requests:
        Webhook(secret).verify(request.body, request.headers)
    # The schedule's delays (0.5 s ± 10 %) separate the attempts.
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]
    assert all(gap >= 0.4 for gap in gaps), gaps


def test_retry_after_is_honoured(hooks_platform: Stack, receiver: Receiver, short_clip: FaceVideo) -> None:
    headers = hooks_platform.new_key()
    path = f"/cb/{uuid.uuid4().hex}"
    callback = receiver.script(path, [Answer(503, {"Retry-After": "3"}), Answer(200)])
    with hooks_platform.client(headers) as client:
        job = hooks_platform.submit(headers, short_clip.path, callback_url=callback)
        hooks_platform.wait_job(headers, job["id"])
        (delivery,) = _wait_deliveries(client, job["id"], count=1, timeout_s=60)

    first, second = receiver.requests(path)
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 2
    assert second.at - first.at >= 2.9  # not the schedule's 0.5 s
    (scheduled, _) = delivery["attempt_log"]
    assert scheduled["status_code"] == 503
    waited = _seconds(scheduled["next_attempt_at"]) - _seconds(scheduled["started_at"])
    assert waited >= 3.0


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def test_410_disables_the_endpoint(
    hooks_platform: Stack, receiver: Receiver, short_clip: FaceVideo
) -> None:
    headers = hooks_platform.new_key()
    path = f"/ep/{uuid.uuid4().hex}"
    url = receiver.script(path, [Answer(410)])
    with hooks_platform.client(headers) as client:
        endpoint = client.post("/v1/webhooks", json={"url": url}).json()
        first = hooks_platform.submit(headers, short_clip.path)
        hooks_platform.wait_job(headers, first["id"])
        (delivery,) = _wait_deliveries(client, first["id"], count=1)
        disabled = client.get(f"/v1/webhooks/{endpoint['id']}").json()
        second = hooks_platform.submit(headers, short_clip.path)
        hooks_platform.wait_job(headers, second["id"])
        _wait_sweeps(hooks_platform, after=time.time())
        second_deliveries = _deliveries(client, second["id"])
        refused = client.post(f"/v1/deliveries/{delivery['id']}/redeliver")
        enabled = client.post(f"/v1/webhooks/{endpoint['id']}/enable")

    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert delivery["attempt_log"][0]["status_code"] == 410
    assert delivery["attempt_log"][0]["next_attempt_at"] is None  # no retry after 410
    assert disabled["is_active"] is False and "410" in disabled["disabled_reason"]
    assert second_deliveries == []  # a disabled endpoint gets no new events
    assert len(receiver.requests(path)) == 1
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "endpoint_disabled"
    assert enabled.status_code == 200 and enabled.json()["is_active"] is True


def test_schedule_exhausted_ends_failed(
    hooks_platform: Stack, receiver: Receiver, short_clip: FaceVideo
) -> None:
    headers = hooks_platform.new_key()
    path = f"/cb/{uuid.uuid4().hex}"
    callback = receiver.script(path, [Answer(500)])
    with hooks_platform.client(headers) as client:
        job = hooks_platform.submit(headers, short_clip.path, callback_url=callback)
        hooks_platform.wait_job(headers, job["id"])
        (delivery,) = _wait_deliveries(client, job["id"], count=1)

    attempts = len(RETRY_SCHEDULE_S) + 1
    assert delivery["status"] == "failed" and delivery["attempts"] == attempts
    assert len(receiver.requests(path)) == attempts
    assert delivery["attempt_log"][-1]["next_attempt_at"] is None


def test_redelivery_sends_the_same_event_again(
    hooks_platform: Stack, receiver: Receiver, short_clip: FaceVideo
) -> None:
    headers = hooks_platform.new_key()
    other = hooks_platform.new_key()
    path = f"/cb/{uuid.uuid4().hex}"
    callback = receiver.script(path, [Answer(200)])
    with hooks_platform.client(headers) as client:
        secret = _callback_secret(client)
        job = hooks_platform.submit(headers, short_clip.path, callback_url=callback)
        hooks_platform.wait_job(headers, job["id"])
        (delivery,) = _wait_deliveries(client, job["id"], count=1)
        with hooks_platform.client(other) as stranger:
            foreign = stranger.post(f"/v1/deliveries/{delivery['id']}/redeliver")
            foreign_log = stranger.get(f"/v1/jobs/{job['id']}/deliveries")
        again = client.post(f"/v1/deliveries/{delivery['id']}/redeliver")
        assert again.status_code == 202, again.text
        first, second = receiver.wait_for(path, 2)
        redelivered = wait_for(
            lambda: (
                (d := client.get(f"/v1/deliveries/{delivery['id']}").json())["status"] == "succeeded" and d
            ),
            timeout_s=30,
            what="the redelivery to succeed",
        )

    assert foreign.status_code == 404 and foreign_log.status_code == 404
    assert first.headers["webhook-id"] == second.headers["webhook-id"] and first.body == second.body
    Webhook(secret).verify(second.body, second.headers)
    assert redelivered["attempts"] == 2 and [a["attempt"] for a in redelivered["attempt_log"]] == [1, 2]


def test_failed_job_sends_job_failed(hooks_platform: Stack, receiver: Receiver) -> None:
    headers = hooks_platform.new_key()
    path = f"/cb/{uuid.uuid4().hex}"
    callback = receiver.script(path, [Answer(200)])
    audio = make_bad_media("audio_only", hooks_platform.media_dir / "audio-only.mp4")
    with hooks_platform.client(headers) as client:
        secret = _callback_secret(client)
        job = hooks_platform.submit(headers, audio, callback_url=callback)
        failed = hooks_platform.wait_job(headers, job["id"])

    (request,) = receiver.wait_for(path, 1)
    payload = Webhook(secret).verify(request.body, request.headers)
    assert failed["status"] == "failed"
    assert payload["type"] == "job.failed"
    assert payload["data"]["status"] == "failed" and payload["data"]["verdict"] is None
    assert payload["data"]["error_code"] == failed["error"]["code"]


def test_address_guard_applies_at_send_time(hooks_platform: Stack, receiver: Receiver) -> None:
    """A URL accepted earlier (or whose DNS changed since) is checked again before every attempt:
    with private addresses not allowed, a name that resolves to loopback gets no traffic."""
    from worker.runtime import build_context
    from worker.webhooks import deliver

    headers = hooks_platform.new_key()
    tenant_id = hooks_platform.tenant_id(headers)
    path = f"/cb/{uuid.uuid4().hex}"
    url = receiver.script(path, [Answer(200)]).replace("127.0.0.1", "localhost")
    delivery_id = uuid.uuid4()
    strict = hooks_platform.settings.model_copy(update={"webhook_allow_private": False})
    context = build_context(strict, hostname="guard-test")
    with hooks_platform.session() as session:
        session.add(
            WebhookDelivery(
                id=delivery_id,
                tenant_id=tenant_id,
                destination="callback",
                url=url,
                event_type="job.succeeded",
                payload={"type": "job.succeeded", "timestamp": "2026-01-01T00:00:00Z", "data": {}},
                status="pending",
                # Due within the claim's slack but not yet due for the platform's own dispatcher
                # (which may call private addresses), so only this call attempts it.
                next_attempt_at=func.now() + timedelta(seconds=0.9),
            )
        )
        session.commit()

    outcome = deliver(context, delivery_id=delivery_id)

    with hooks_platform.session() as session:
        row = session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id))
        assert row is not None
        status, attempts, error = row.status, row.attempts, row.last_error
    with hooks_platform.client(headers) as client:
        logged = client.get(f"/v1/deliveries/{delivery_id}").json()
    assert outcome.result == "failed"
    assert (status, attempts) == ("failed", 1)
    assert error is not None and "loopback" in error
    assert logged["attempt_log"][0]["error_code"] == "address_not_allowed"
    assert logged["attempt_log"][0]["status_code"] is None
    assert receiver.requests(path) == []


def test_a_review_reaches_endpoints_subscribed_to_job_reviewed_signed(
    hooks_platform: Stack, receiver: Receiver, short_clip: FaceVideo
) -> None:
    headers = hooks_platform.new_key()
    reviews_path = f"/ep/{uuid.uuid4().hex}"
    reviews_url = receiver.script(reviews_path, [Answer(200)])
    callback_path = f"/cb/{uuid.uuid4().hex}"
    callback = receiver.script(callback_path, [Answer(200)])
    with hooks_platform.client(headers) as client:
        endpoint = client.post(
            "/v1/webhooks", json={"url": reviews_url, "event_types": ["job.reviewed"]}
        ).json()
        job = hooks_platform.submit(
            headers, short_clip.path, callback_url=callback, external_id="clip-reviewed"
        )
        finished = hooks_platform.wait_job(headers, job["id"])
        receiver.wait_for(callback_path, 1)  # job.succeeded went to the callback only
        reviewed = client.put(f"/v1/jobs/{job['id']}/review", json={"label": "unsure", "reviewer": "ana"})
        assert reviewed.status_code == 200, reviewed.text
        deliveries = _wait_deliveries(client, job["id"], count=2)

    (request,) = receiver.wait_for(reviews_path, 1)
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert finished["status"] == "succeeded"
    assert payload["type"] == "job.reviewed"
    assert payload["data"]["job_id"] == job["id"] and payload["data"]["verdict"] == finished["verdict"]
    assert payload["data"]["external_id"] == "clip-reviewed"
    assert payload["data"]["review"]["label"] == "unsure" and payload["data"]["review"]["reviewer"] == "ana"
    by_event = {item["event_type"]: item for item in deliveries}
    assert set(by_event) == {"job.succeeded", "job.reviewed"}
    assert by_event["job.reviewed"]["status"] == "succeeded"
    assert by_event["job.reviewed"]["endpoint_id"] == endpoint["id"]
    assert len(receiver.requests(callback_path)) == 1  # the callback heard nothing of the review
