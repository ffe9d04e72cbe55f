"""PostgreSQL restarted under load: meanwhile the API answers 503 with Retry-After (never a 500)
and comes back by itself; the workers retry the writes they could not make, and every job ends
once, with no row written twice."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import httpx
import pytest

from tests.integration.reliability.conftest import duplicate_rows, finalized_counts
from tests.utils.media import FaceVideo
from tests.utils.stack import PrivateStack
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.integration

OUTAGE_S = 8.0


def _processing(stack: PrivateStack, headers: dict[str, str], job_ids: list[str]) -> bool:
    return any(stack.job(headers, job_id)["status"] == "processing" for job_id in job_ids)


def test_postgres_restart_answers_503_then_recovers(fault_stack: PrivateStack, short_clip: FaceVideo) -> None:
    stack = fault_stack
    headers = stack.new_key()
    job_ids = [
        stack.submit(headers, short_clip.path, segment_seconds="1")["id"] for _ in range(4)
    ]
    wait_for(lambda: _processing(stack, headers, job_ids), timeout_s=120, what="a job to be processing")
    log_offset = len(stack.worker_logs())

    seen: list[httpx.Response] = []
    stack.postgres.stop(mode="fast")  # every open connection is cut
    try:
        deadline = time.monotonic() + OUTAGE_S
        with stack.client(headers, timeout_s=15) as client:
            while time.monotonic() < deadline:
                seen.append(client.get(f"/v1/jobs/{job_ids[0]}"))
                seen.append(client.get("/v1/jobs"))
                seen.append(
                    client.post(
                        "/v1/jobs", files={"file": ("late.mp4", short_clip.path.read_bytes(), "video/mp4")}
                    )
                )
                time.sleep(0.5)
            ready = client.get("/readyz")
            alive = client.get("/healthz")
    finally:
        stack.postgres.start()

    statuses = Counter(response.status_code for response in seen)
    assert set(statuses) == {503}, statuses
    for response in seen:
        assert response.headers.get("Retry-After", "").isdigit(), response.headers
        assert response.json()["error"]["code"] == "database_unavailable", response.text
    assert ready.status_code == 503 and ready.json()["checks"]["database"]["ok"] is False
    assert alive.status_code == 200

    # No restart of the API: its pool notices the dead connections and opens new ones.
    with stack.client(headers) as client:
        wait_for(
            lambda: client.get(f"/v1/jobs/{job_ids[0]}").status_code == 200,
            timeout_s=30,
            what="the API to answer again after PostgreSQL came back",
            interval_s=0.5,
        )
        assert client.get("/readyz").json()["checks"]["database"]["ok"] is True
    jobs = [stack.wait_job(headers, job_id, timeout_s=300) for job_id in job_ids]

    assert [job["status"] for job in jobs] == ["succeeded"] * len(jobs), jobs
    ids = [uuid.UUID(job_id) for job_id in job_ids]
    assert set(finalized_counts(stack, ids).values()) == {1}
    assert duplicate_rows(stack, ids) == {"frames": 0, "segments": 0, "tracks": 0}
    # The workers met the outage and retried rather than failing a job.
    assert "OperationalError" in stack.worker_logs()[log_offset:]
    late = stack.submit(headers, short_clip.path)
    assert stack.wait_job(headers, late["id"])["status"] == "succeeded"
