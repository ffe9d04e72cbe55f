"""Faults around the worker: killed mid-segment (whole worker or one pool process), a lost
broker message, and a segment past the attempt cap."""

from __future__ import annotations

import json
import os
import signal
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import func, select, update

from core.models import Frame, Job, Segment, Track
from tests.integration.platform.conftest import MAX_ATTEMPTS
from tests.utils.media import FaceVideo
from tests.utils.platform import REDIS_URL
from tests.utils.stack import Stack
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def four_segment_video(platform: Stack) -> FaceVideo:
    """Heavier segments (640×360, 8 sampled frames each) so a kill lands inside one."""
    return platform.face_video("four-segments.mp4", seconds=4.0, width=640, height=360, fps=25.0)


def _segments(platform: Stack, job_id: uuid.UUID) -> list[Segment]:
    with platform.session() as session:
        return list(
            session.scalars(select(Segment).where(Segment.job_id == job_id).order_by(Segment.segment_index))
        )


def _wait_running_segment(platform: Stack, job_id: uuid.UUID) -> None:
    def running() -> bool:
        segments = _segments(platform, job_id)
        return any(s.status == "done" for s in segments) and any(s.status == "running" for s in segments)

    wait_for(running, timeout_s=120, what="a segment running after another finished", interval_s=0.02)


def _assert_no_duplicates(platform: Stack, job_id: uuid.UUID, segments_total: int) -> None:
    with platform.session() as session:
        frames = session.scalar(select(func.count()).select_from(Frame).where(Frame.job_id == job_id))
        distinct = session.scalar(
            select(func.count(func.distinct(Frame.frame_index))).where(Frame.job_id == job_id)
        )
        tracks = session.scalar(select(func.count()).select_from(Track).where(Track.job_id == job_id))
        distinct_tracks = session.scalar(
            select(func.count(func.distinct(Track.track_id))).where(Track.job_id == job_id)
        )
        rows = session.scalars(select(Segment).where(Segment.job_id == job_id)).all()
    assert frames == distinct and frames == sum(s.frame_count for s in rows) and frames > 0
    assert tracks == distinct_tracks and tracks >= 1
    assert sorted(s.segment_index for s in rows) == list(range(segments_total))
    assert all(s.status == "done" for s in rows)


def test_worker_killed_mid_segment_job_succeeds_after_restart(
    platform: Stack, four_segment_video: FaceVideo
) -> None:
    headers = platform.new_key()
    job_id = uuid.UUID(
        platform.submit(headers, four_segment_video.path, sample_fps="8", segment_seconds="1")["id"]
    )
    _wait_running_segment(platform, job_id)
    try:
        platform.worker.kill_group(signal.SIGKILL)
        killed = [s.segment_index for s in _segments(platform, job_id) if s.status == "running"]
        assert killed, "the kill landed between two segments"
    finally:
        platform.restart_worker()

    job = platform.wait_job(headers, str(job_id))

    assert job["status"] == "succeeded", job
    assert job["progress"] == {"segments_done": 4, "segments_total": 4}
    assert job["attempts"] == 2
    attempts = {s.segment_index: s.attempts for s in _segments(platform, job_id)}
    assert all(attempts[index] == 2 for index in killed), attempts
    assert all(count == 1 for index, count in attempts.items() if index not in killed), attempts
    _assert_no_duplicates(platform, job_id, 4)
    assert "worker.recovery.resent" in platform.worker.log_text()


def _pool_pid(platform: Stack) -> int:
    lines = [
        json.loads(line)
        for line in platform.worker.log_text().splitlines()
        if '"worker.process.ready"' in line
    ]
    return int(lines[-1]["pid"])


def test_pool_process_killed_message_is_redelivered(
    platform: Stack, four_segment_video: FaceVideo
) -> None:
    headers = platform.new_key()
    pid = _pool_pid(platform)
    job_id = uuid.UUID(
        platform.submit(headers, four_segment_video.path, sample_fps="8", segment_seconds="1")["id"]
    )
    _wait_running_segment(platform, job_id)

    os.kill(pid, signal.SIGKILL)
    killed = [s.segment_index for s in _segments(platform, job_id) if s.status == "running"]
    job = platform.wait_job(headers, str(job_id))

    assert killed, "the kill landed between two segments"
    assert job["status"] == "succeeded", job
    attempts = {s.segment_index: s.attempts for s in _segments(platform, job_id)}
    assert all(attempts[index] == 2 for index in killed), attempts
    _assert_no_duplicates(platform, job_id, 4)
    assert platform.worker.alive() and _pool_pid(platform) != pid


def test_reconciler_resends_a_lost_probe_message(platform: Stack, two_segment_video: FaceVideo) -> None:
    headers = platform.new_key()
    broker = redis.Redis.from_url(REDIS_URL)
    platform.pause_queue("probe")
    try:
        job_id = uuid.UUID(platform.submit(headers, two_segment_video.path)["id"])
        # The broker loses the message; the row says it was sent an hour ago.
        assert broker.delete(f"{platform.settings.broker_key_prefix}probe") == 1
        with platform.session() as session:
            session.execute(
                update(Job).where(Job.id == job_id).values(enqueued_at=datetime.now(UTC) - timedelta(hours=1))
            )
            session.commit()
    finally:
        platform.resume_queue("probe")

    job = platform.wait_job(headers, str(job_id), timeout_s=60)

    assert job["status"] == "succeeded", job
    assert "reconcile.resent" in platform.worker.log_text()


def test_segment_past_attempt_cap_fails_the_job(platform: Stack, two_segment_video: FaceVideo) -> None:
    headers = platform.new_key()
    platform.pause_queue("analyze")
    try:
        job_id = uuid.UUID(platform.submit(headers, two_segment_video.path, segment_seconds="1.5")["id"])
        wait_for(lambda: len(_segments(platform, job_id)) == 2, timeout_s=60, what="the job to be planned")
        # Segment 0 already stopped the worker MAX_ATTEMPTS times.
        with platform.session() as session:
            session.execute(
                update(Segment)
                .where(Segment.job_id == job_id, Segment.segment_index == 0)
                .values(attempts=MAX_ATTEMPTS)
            )
            session.commit()
    finally:
        platform.resume_queue("analyze")

    job = platform.wait_job(headers, str(job_id))

    assert job["status"] == "failed", job
    assert job["error"]["code"] == "attempts_exhausted"
    assert "segment 0" in job["error"]["message"]
    with platform.session() as session:
        assert session.scalar(select(func.count()).select_from(Track).where(Track.job_id == job_id)) == 0
