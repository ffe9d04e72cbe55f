"""What a worker says when it starts: a worker without --beat warns that the periodic schedule
(webhook retries, the reconciler) is not run by it."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import pytest

from tests.utils.platform import REDIS_URL, ServiceProcess, clear_broker_keys, fresh_database
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.integration


def _started_worker_log(tmp_path: Path, *flags: str) -> str:
    prefix = f"dfs-test-start-{secrets.token_hex(4)}:"
    with fresh_database() as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "BROKER_URL": REDIS_URL,
            "BROKER_KEY_PREFIX": prefix,
            "STORAGE_URL": (tmp_path / "storage").as_uri(),
            "WORK_DIR": str(tmp_path / "work"),
        }
        argv = [sys.executable, "-m", "core.cli", "worker", "--queues", "maintenance",
                "--hostname", f"start-{tmp_path.name}@%h", *flags]  # fmt: skip
        worker = ServiceProcess("start", argv, env=env, log_path=tmp_path / "worker.log").start()
        try:
            wait_for(lambda: "ready" in worker.log_text(), timeout_s=120, what="the worker to be ready")
        finally:
            worker.stop()
    clear_broker_keys(prefix)
    return worker.log_text()


def test_a_worker_without_beat_warns_at_start(tmp_path: Path) -> None:
    log = _started_worker_log(tmp_path)

    assert "worker.start.without_beat" in log and "--beat" in log, log[-3000:]


def test_a_worker_with_beat_does_not_warn(tmp_path: Path) -> None:
    log = _started_worker_log(tmp_path, "--beat")

    assert "worker.start.without_beat" not in log, log[-3000:]
