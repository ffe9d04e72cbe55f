"""Worker resource reports and queue depths against the real Redis: reports appear, age and
expire; queue depths count the broker's own lists, priority steps included."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator

import pytest

from core.config import Settings, load_settings
from core.queue import Queue, enqueue_probe, make_celery
from core.resources import ResourceReporter, queue_depths, read_reports
from tests.utils.platform import REDIS_URL, clear_broker_keys


@pytest.fixture()
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    prefix = f"dfs-test-resources-{secrets.token_hex(4)}:"
    yield load_settings(
        environment="test",
        broker_url=REDIS_URL,
        broker_key_prefix=prefix,
        storage_url=tmp_path_factory.mktemp("storage").as_uri(),
    )
    clear_broker_keys(prefix)


def test_report_is_read_back_with_process_and_host_figures(settings: Settings) -> None:
    calls = []

    def gpu() -> dict[str, int]:
        calls.append(1)
        return {"allocated_bytes": 123}

    reporter = ResourceReporter(settings, node="worker@test", role="pool", gpu_probe=gpu, interval_s=5)
    written = reporter.report()
    reports = read_reports(settings)
    assert len(reports) == 1
    report = reports[0]
    assert report["node"] == "worker@test" and report["role"] == "pool"
    assert report["process"]["pid"] == written["process"]["pid"] and report["process"]["rss_bytes"] > 0
    assert report["gpu"] == {"allocated_bytes": 123} and calls == [1]
    assert report["host"]["cpu_count"] >= 1 and report["host"]["memory_total_bytes"] > 0
    assert 0 <= report["age_s"] < 5
    reporter.stop()
    assert read_reports(settings) == []


def test_a_broken_gpu_probe_is_reported_not_raised(settings: Settings) -> None:
    def broken() -> None:
        raise RuntimeError("driver went away")

    reporter = ResourceReporter(settings, node="worker@gpu", role="pool", gpu_probe=broken, interval_s=5)
    assert "driver went away" in reporter.report()["gpu"]["error"]
    reporter.stop()


def test_reports_of_a_dead_process_expire(settings: Settings) -> None:
    reporter = ResourceReporter(settings, node="worker@gone", role="main", interval_s=0.4)
    reporter.start()
    deadline = time.monotonic() + 5
    while not read_reports(settings) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r["node"] for r in read_reports(settings)] == ["worker@gone"]
    # Stop the thread without removing the key, as a killed process would.
    reporter._stop.set()
    assert reporter._thread is not None
    reporter._thread.join(timeout=5)
    time.sleep(1.6)  # three intervals, rounded to a whole second
    assert read_reports(settings) == []


def test_other_deployments_reports_are_not_read(settings: Settings) -> None:
    # Two deployments sharing one Redis, told apart by their broker key prefix.
    other = load_settings(
        environment="test", broker_url=REDIS_URL, broker_key_prefix=f"dfs-test-other-{secrets.token_hex(4)}:"
    )
    reporter = ResourceReporter(other, node="worker@elsewhere", role="main", interval_s=5)
    reporter.report()
    try:
        assert [r["node"] for r in read_reports(other)] == ["worker@elsewhere"]
        assert read_reports(settings) == []
    finally:
        reporter.stop()
        clear_broker_keys(other.broker_key_prefix)


def test_queue_depths_count_waiting_messages_by_priority(settings: Settings) -> None:
    app = make_celery(settings)
    assert queue_depths(settings, list(Queue))["probe"]["waiting"] == 0
    for priority in (0, 0, 6):
        enqueue_probe(app, job_id=uuid.uuid4(), priority=priority)
    depths = queue_depths(settings, list(Queue))
    assert depths["probe"]["waiting"] == 3
    assert depths["probe"]["by_priority"] == {"0": 2, "3": 0, "6": 1, "9": 0}
    assert depths["analyze"]["waiting"] == 0 and set(depths) == {q.value for q in Queue}
