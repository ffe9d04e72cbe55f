"""Object storage unreachable (the network path to the S3 server cut, the server keeping its
objects): uploads answer 503 with Retry-After and store nothing; a job meeting a short outage
retries and succeeds; a job meeting a long one fails with ``storage_unavailable`` after the attempt
cap, and the next job succeeds once storage is back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from celery import Celery
from sqlalchemy import func, select

from core.models import Job
from core.queue import make_celery
from tests.utils.media import FaceVideo
from tests.utils.stack import FAULT_SETTINGS, PrivateStack
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.integration

MAX_ATTEMPTS = int(FAULT_SETTINGS["MAX_ATTEMPTS"])


@pytest.fixture
def celery(fault_stack: PrivateStack) -> Iterator[Celery]:
    app = make_celery(fault_stack.settings)
    yield app
    app.close()


def _node(stack: PrivateStack) -> str:
    import socket

    return f"{stack.worker_names[0]}@{socket.gethostname()}"


def _set_consuming(celery: Celery, stack: PrivateStack, queue: str, *, on: bool) -> None:
    control = celery.control.add_consumer if on else celery.control.cancel_consumer
    replies = control(queue, destination=[_node(stack)], reply=True, timeout=10)
    assert replies, f"worker {_node(stack)} did not answer"


def _attempts(stack: PrivateStack, job_id: str) -> int:
    with stack.session() as session:
        return int(session.scalar(select(Job.attempts).where(Job.id == uuid.UUID(job_id))) or 0)


def test_upload_during_outage_is_503_and_stores_nothing(
    fault_stack: PrivateStack, short_clip: FaceVideo
) -> None:
    stack = fault_stack
    headers = stack.new_key()
    tenant_id = stack.tenant_id(headers)
    with stack.storage_proxy.outage():
        response = stack.post_video(headers, short_clip.path)
        with stack.client() as client:
            ready = client.get("/readyz")

    assert response.status_code == 503, response.text
    assert response.headers.get("Retry-After", "").isdigit()
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert ready.status_code == 503 and ready.json()["checks"]["storage"]["ok"] is False
    with stack.session() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id)) == 0
    assert stack.stored_keys(f"videos/{tenant_id}/") == set()


def test_short_outage_job_retries_then_succeeds(
    fault_stack: PrivateStack, short_clip: FaceVideo, celery: Celery
) -> None:
    stack = fault_stack
    headers = stack.new_key()
    _set_consuming(celery, stack, "probe", on=False)
    try:
        job_id = stack.submit(headers, short_clip.path)["id"]
        with stack.storage_proxy.outage():
            _set_consuming(celery, stack, "probe", on=True)
            # The first attempt met the outage; storage comes back while the retry waits.
            wait_for(lambda: _attempts(stack, job_id) >= 2, timeout_s=120, what="a second attempt")
    finally:
        _set_consuming(celery, stack, "probe", on=True)

    job = stack.wait_job(headers, job_id)

    assert job["status"] == "succeeded", job
    assert 2 <= job["attempts"] <= MAX_ATTEMPTS
    assert '"storage_unavailable"' in stack.worker_logs()


def test_long_outage_fails_with_storage_unavailable(
    fault_stack: PrivateStack, short_clip: FaceVideo, celery: Celery
) -> None:
    stack = fault_stack
    headers = stack.new_key()
    _set_consuming(celery, stack, "probe", on=False)
    try:
        job_id = stack.submit(headers, short_clip.path)["id"]
        with stack.storage_proxy.outage():
            _set_consuming(celery, stack, "probe", on=True)
            job = stack.wait_job(headers, job_id, timeout_s=180)
    finally:
        _set_consuming(celery, stack, "probe", on=True)
    after = stack.submit(headers, short_clip.path)

    assert job["status"] == "failed", job
    assert job["error"]["code"] == "storage_unavailable"
    assert "unavailable" in job["error"]["message"]
    assert job["attempts"] == MAX_ATTEMPTS
    # Storage is back: the worker goes on, and the failed job's video is still there to retry.
    assert stack.wait_job(headers, after["id"])["status"] == "succeeded"
