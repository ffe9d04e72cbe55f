"""Secrets never reach the logs. A whole flow runs on services that all have secrets (API keys, a
Redis password, a PostgreSQL password, S3 keys, the webhook secrets key, endpoint and callback
signing secrets, presigned URLs), through outages of Redis and PostgreSQL that make every component
log connection errors; then the logs of the API and the workers are searched for each value.

The logs of the services themselves (moto, Redis, PostgreSQL) are not ours and are not searched."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.security.conftest import SECRETS
from tests.utils.media import FaceVideo
from tests.utils.receiver import Answer, Receiver
from tests.utils.stack import SOURCE_BUCKET, PrivateStack
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.integration

_THIRD_PARTY_LOGS = {"moto.log", "redis.log", "postgres.log"}
# How the API, Celery, redis-py and psycopg say that a connection failed.
_CONNECTION_FAILURES = ("Connection refused", "ConnectionError", "connection to server")


def _our_logs(stack: PrivateStack) -> dict[Path, str]:
    return {
        path: path.read_text(errors="replace")
        for path in sorted(stack.log_dir.rglob("*.log"))
        if path.name not in _THIRD_PARTY_LOGS
    }


def _log_sizes(stack: PrivateStack) -> dict[Path, int]:
    """How far the running API's and workers' logs go now."""
    running = [stack.api, *(worker for worker in stack.workers if worker.alive())]
    return {process.log_path: len(process.log_text()) for process in running}


def _wait_outage_logged(stack: PrivateStack, before: dict[Path, int], service: str) -> None:
    """Waits until the API and every worker running at ``before`` have logged since then a
    connection they could not make: the lines most likely to carry a URL with its password."""

    def logged() -> bool:
        return all(
            any(failure in path.read_text(errors="replace")[size:] for failure in _CONNECTION_FAILURES)
            for path, size in before.items()
        )

    names = ", ".join(path.name for path in before)
    wait_for(logged, timeout_s=60, what=f"{names} to log the {service} outage", interval_s=0.2)


def test_no_secret_reaches_the_logs(
    security_stack: PrivateStack, face_clip: FaceVideo, receiver: Receiver
) -> None:
    stack = security_stack
    tenant = stack.new_key()
    admin = stack.new_key(admin=True)
    bogus = f"dfs_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"
    found: dict[str, str] = {
        **SECRETS,
        "tenant key": tenant["Authorization"].removeprefix("Bearer "),
        "admin key": admin["Authorization"].removeprefix("Bearer "),
        "unknown key": bogus,
    }
    # Receivers often carry their own credential in the URL (path or query).
    url_token = secrets.token_urlsafe(24)
    callback = receiver.script(f"/secrets-{secrets.token_hex(3)}?token={url_token}", [Answer()])
    found["token in a webhook URL"] = url_token

    with stack.client(tenant) as client:
        first = client.get("/v1/webhooks/callback-secret").json()["secret"]
        rotated = client.post("/v1/webhooks/callback-secret/rotate").json()["secret"]
        endpoint = client.post("/v1/webhooks", json={"url": callback, "event_types": ["job.succeeded"]})
        assert endpoint.status_code == 201, endpoint.text
        found |= {"callback secret": first, "rotated callback secret": rotated,
                  "endpoint secret": endpoint.json()["secret"]}  # fmt: skip

        job_id = stack.submit(tenant, face_clip.path, callback_url=callback)["id"]
        stack.s3().put_object(Bucket=SOURCE_BUCKET, Key="secrets/clip.mp4", Body=face_clip.path.read_bytes())
        batch = client.post("/v1/batches", json={"items": [{"source": f"s3://{SOURCE_BUCKET}/secrets/clip.mp4"}]})
        assert batch.status_code == 202, batch.text
        upload = client.post("/v1/uploads", json={"size_bytes": 4096, "filename": "direct.mp4"}).json()
        signature = parse_qs(urlsplit(upload["url"]).query).get("X-Amz-Signature", [""])[0]
        assert signature, upload["url"]
        found |= {"presigned signature": signature}
        assert stack.wait_job(tenant, job_id)["status"] == "succeeded"
        path = urlsplit(callback)
        receiver.wait_for(f"{path.path}?{path.query}", 2)  # the callback and the endpoint both sent

        with stack.client({"Authorization": f"Bearer {bogus}"}) as stranger:
            assert stranger.get("/v1/jobs").status_code == 401
        with stack.client(admin) as operator:
            assert operator.get("/healthcheck/").status_code == 200
            assert operator.get("/system/resource/consumption/").status_code == 200

        # Outages: every component logs what it could not reach.
        before = _log_sizes(stack)
        stack.redis.stop()
        try:
            during_redis = stack.post_video(tenant, face_clip.path)
            client.get("/readyz")
            _wait_outage_logged(stack, before, "Redis")
        finally:
            stack.redis.start()
        before = _log_sizes(stack)
        stack.postgres.stop(mode="fast")
        try:
            client.get(f"/v1/jobs/{job_id}")
            client.get("/readyz")
            _wait_outage_logged(stack, before, "PostgreSQL")
        finally:
            stack.postgres.start()
        assert during_redis.status_code == 202, during_redis.text
        assert stack.wait_job(tenant, during_redis.json()["id"], timeout_s=300)["status"] == "succeeded"

    logs = _our_logs(stack)
    assert any("api" in path.name for path in logs) and any("private" in path.name for path in logs)
    assert any("Connection refused" in text or "connecting" in text for text in logs.values())
    leaks = [
        f"{name} in {path.name}"
        for name, value in found.items()
        for path, text in logs.items()
        if value and value in text
    ]
    assert not leaks, leaks
