"""Videos whose decoding crashes every time. The worker's ffmpeg here is the real one except on
files named with a fault marker: ``crash-decoder`` dies of SIGSEGV (the decoder subprocess
crashes), ``crash-worker-process`` kills the pool process that started it (as a decoder crashing
inside that process would). Either way the job fails with an error code instead of looping, and
the worker goes on with the next job."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from core.models import Segment
from tests.utils.media import FaceVideo
from tests.utils.stack import FAULT_SETTINGS, PrivateStack

pytestmark = pytest.mark.integration

MAX_ATTEMPTS = int(FAULT_SETTINGS["MAX_ATTEMPTS"])


def test_decoder_crash_fails_the_job_with_a_code(fault_stack: PrivateStack, short_clip: FaceVideo) -> None:
    stack = fault_stack
    headers = stack.new_key()

    crashed = stack.submit(headers, short_clip.path, filename="crash-decoder.mp4")
    job = stack.wait_job(headers, crashed["id"])
    healthy = stack.wait_job(headers, stack.submit(headers, short_clip.path)["id"])

    assert job["status"] == "failed", job
    assert job["error"]["code"] == "decode_failed"
    assert "crash-decoder.mp4" in job["error"]["message"]
    assert healthy["status"] == "succeeded"
    assert stack.workers[0].alive()


def test_worker_process_crash_stops_at_the_attempt_cap(
    fault_stack: PrivateStack, short_clip: FaceVideo
) -> None:
    stack = fault_stack
    headers = stack.new_key()
    pool_starts = stack.workers[0].log_text().count("worker.process.ready")

    crashed = stack.submit(headers, short_clip.path, filename="crash-worker-process.mp4")
    job = stack.wait_job(headers, crashed["id"], timeout_s=400)
    healthy = stack.wait_job(headers, stack.submit(headers, short_clip.path)["id"])

    assert job["status"] == "failed", job
    assert job["error"]["code"] == "attempts_exhausted"
    assert "segment 0" in job["error"]["message"]
    with stack.session() as session:
        segment = session.scalar(select(Segment).where(Segment.job_id == uuid.UUID(crashed["id"])))
    assert segment is not None and segment.attempts == MAX_ATTEMPTS + 1  # the last claim saw the cap
    assert job["attempts"] == MAX_ATTEMPTS  # the claim that saw the cap did not count as a try
    # The pool process died once per attempt and was replaced each time; the worker lived on.
    assert stack.workers[0].alive()
    assert stack.workers[0].log_text().count("worker.process.ready") >= pool_starts + MAX_ATTEMPTS
    assert healthy["status"] == "succeeded"
