"""What a worker does when it starts: a worker without --beat warns that the periodic schedule
(webhook retries, the reconciler) is not run by it, and every worker marks a fresh broker before it
takes any message, so the reconciler never takes the work started after that for lost."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import pytest
import redis

from tests.utils.platform import REDIS_URL, ServiceProcess, clear_broker_keys, fresh_database
from tests.utils.waiting import wait_for
from worker.reconcile import BROKER_MARKER_KEY

pytestmark = pytest.mark.integration


def _started_worker(tmp_path: Path, *flags: str) -> tuple[str, bool]:
    """The log of a worker started on a fresh broker, and whether the broker held the reconciler's
    marker once the worker said it was ready."""
    prefix = f"dfs-test-start-{secrets.token_hex(4)}:"
    with fresh_database() as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "BROKER_URL": REDIS_URL,
            "BROKER_KEY_PREFIX": prefix,
            "STORAGE_URL": (tmp_path / "storage").as_uri(),
            "WORK_DIR": str(tmp_path / "work"),
            # Beat's first reconciler run comes long after these tests end.
            "RECONCILE_INTERVAL_S": "3600",
        }
        argv = [sys.executable, "-m", "core.cli", "worker", "--queues", "maintenance",
                "--hostname", f"start-{tmp_path.name}@%h", *flags]  # fmt: skip
        worker = ServiceProcess("start", argv, env=env, log_path=tmp_path / "worker.log").start()
        try:
            wait_for(
                lambda: '"worker.ready"' in worker.log_text(), timeout_s=120, what="the worker to be ready"
            )
            client = redis.Redis.from_url(REDIS_URL)
            try:
                marked = bool(client.exists(f"{prefix}{BROKER_MARKER_KEY}"))
            finally:
                client.close()
        finally:
            worker.stop()
    clear_broker_keys(prefix)
    return worker.log_text(), marked


def test_a_worker_without_beat_warns_at_start(tmp_path: Path) -> None:
    log, _ = _started_worker(tmp_path)

    assert "worker.start.without_beat" in log and "--beat" in log, log[-3000:]


def test_a_worker_with_beat_does_not_warn(tmp_path: Path) -> None:
    log, _ = _started_worker(tmp_path, "--beat")

    assert "worker.start.without_beat" not in log, log[-3000:]


def test_a_worker_marks_a_fresh_broker_before_it_takes_work(tmp_path: Path) -> None:
    """Left to beat's first reconciler run, the marker came a reconcile interval after the start:
    a job planned before then had its segments' messages sent twice (once by the probe, once by
    that run, which took the unmarked broker for one that had lost its data)."""
    log, marked = _started_worker(tmp_path)

    assert marked, log[-3000:]
    assert "worker.broker_check.failed" not in log, log[-3000:]
