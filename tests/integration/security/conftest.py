"""The platform for security tests, on private services with real secrets everywhere a deployment
has them (a Redis password, a PostgreSQL password, S3 keys, the webhook secrets key), so tests can
look for them where they must never appear; plus a loopback webhook receiver and a tenant whose
resources (a finished job with explanations, a batch, an endpoint, deliveries, an upload) the
other tenants' keys are pointed at."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.utils.media import FaceVideo, make_face_video
from tests.utils.receiver import Answer, Receiver, running_receiver
from tests.utils.stack import SOURCE_BUCKET, PrivateStack, private_stack
from tests.utils.waiting import wait_for

# Generated per run: a constant would be found in the repository, not only in a log.
SECRETS = {
    "redis_password": f"redis-{secrets.token_urlsafe(18)}",
    "postgres_password": f"pg-{secrets.token_urlsafe(18)}",
    "s3_access_key_id": f"AKIA{secrets.token_hex(8).upper()}",
    "s3_secret_access_key": f"s3-{secrets.token_urlsafe(30)}",
    "webhook_secrets_key": f"whk-{secrets.token_urlsafe(30)}",
}
MAX_UPLOAD_BYTES = 3_000_000
OWNER_REVIEW_NOTE = "owner-review-note"
BATCH_BODY_MAX_BYTES = 65_536

SECURITY_SETTINGS = {
    "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
    "BATCH_BODY_MAX_BYTES": str(BATCH_BODY_MAX_BYTES),
    "S3_ACCESS_KEY_ID": SECRETS["s3_access_key_id"],
    "S3_SECRET_ACCESS_KEY": SECRETS["s3_secret_access_key"],
    "WEBHOOK_SECRETS_KEY": SECRETS["webhook_secrets_key"],
    "WEBHOOK_ALLOW_PRIVATE": "true",
    "WEBHOOK_RETRY_SCHEDULE_S": "0.5,0.5",
    "WEBHOOK_DISPATCH_INTERVAL_S": "0.5",
    # Generous: the route sweeps send a few hundred requests per tenant; the rate limit tests
    # start an API of their own with small limits.
    "RATE_LIMIT_PER_S": "1000",
    "RATE_LIMIT_BURST": "2000",
    "RATE_LIMIT_WRITES_PER_S": "500",
    "RATE_LIMIT_WRITES_BURST": "1000",
    # The route sweeps send every route a few wrong keys from one address.
    "AUTH_FAILURES_BURST": "1000",
}


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture(scope="session")
def security_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with private_stack(
        tmp_path_factory.mktemp("security-stack"),
        extra=SECURITY_SETTINGS,
        redis_password=SECRETS["redis_password"],
        postgres_password=SECRETS["postgres_password"],
        queues="probe,analyze,webhooks,maintenance",
    ) as stack:
        yield stack
        errors = stack.api_server_errors(allow_unavailable=True)
        assert not errors, "the API answered 5xx (not 503) or crashed:\n" + "\n".join(errors[:10])


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory: pytest.TempPathFactory) -> FaceVideo:
    """2 s, 320×240, one face."""
    return make_face_video(
        tmp_path_factory.mktemp("security-media") / "face.mp4", seconds=2.0, width=320, height=240, fps=10.0
    )


@dataclass(frozen=True)
class TenantResources:
    """One tenant's key and a resource of every kind, for other tenants to be pointed at."""

    headers: dict[str, str]
    tenant_id: uuid.UUID
    job_id: str
    batch_id: str
    endpoint_id: str
    delivery_id: str
    explanation_id: int
    upload_id: str
    video_key: str  # the stored video's storage key
    share_id: str
    share_url: str  # the job's share link, which opens it without a key


@pytest.fixture(scope="session")
def owner(security_stack: PrivateStack, face_clip: FaceVideo, receiver: Receiver) -> TenantResources:
    stack = security_stack
    headers = stack.new_key()
    hook_url = receiver.script(f"/owner-{secrets.token_hex(3)}", [Answer()])
    with stack.client(headers) as client:
        endpoint = client.post("/v1/webhooks", json={"url": hook_url, "event_types": ["job.succeeded"]})
        assert endpoint.status_code == 201, endpoint.text
        job_id = stack.submit(headers, face_clip.path, external_id="owner-job")["id"]
        job = stack.wait_job(headers, job_id)
        assert job["status"] == "succeeded", job
        # A review, so that the export and the agreement summary have the owner's label to keep.
        review = client.put(f"/v1/jobs/{job_id}/review", json={"label": "fake", "note": OWNER_REVIEW_NOTE})
        assert review.status_code == 200, review.text
        explanations = client.get(f"/v1/jobs/{job_id}/explanations").json()["items"]
        assert explanations, "the owner's job has no explanation to point at"
        deliveries = wait_for(
            lambda: [
                item for item in client.get(f"/v1/jobs/{job_id}/deliveries").json()["items"]
                if item["status"] == "succeeded"
            ],
            timeout_s=60,
            what="the owner's job.succeeded delivery",
        )
        stack.s3().put_object(Bucket=SOURCE_BUCKET, Key="owner/clip.mp4", Body=face_clip.path.read_bytes())
        source = f"s3://{SOURCE_BUCKET}/owner/clip.mp4"
        batch = client.post("/v1/batches", json={"items": [{"source": source}], "name": "owner"})
        assert batch.status_code == 202, batch.text
        upload = client.post("/v1/uploads", json={"size_bytes": 1000, "filename": "owner.mp4"})
        assert upload.status_code == 201, upload.text
        share = client.post(f"/v1/jobs/{job_id}/shares")
        assert share.status_code == 201, share.text
    with stack.session() as session:
        from core.models import Job

        stored = session.get(Job, uuid.UUID(job_id))
        assert stored is not None and stored.video.storage_key is not None
        video_key = stored.video.storage_key
    return TenantResources(
        headers=headers,
        tenant_id=stack.tenant_id(headers),
        job_id=job_id,
        batch_id=batch.json()["id"],
        endpoint_id=endpoint.json()["id"],
        delivery_id=deliveries[0]["id"],
        explanation_id=int(explanations[0]["id"]),
        upload_id=upload.json()["upload_id"],
        video_key=video_key,
        share_id=share.json()["id"],
        share_url=share.json()["url"],
    )
