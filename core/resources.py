"""Resource figures of the platform: worker processes' CPU, memory and GPU memory, and queue depths.

Each worker process reports its figures to Redis; the API reads those reports, and the depth of
every queue, for the operators' endpoints. Reports expire on their own (three report intervals),
so a dead worker drops out of the list without anyone cleaning up after it. No torch here: a
worker passes in how to read its GPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import psutil
import redis

from core.config import Settings
from core.logs import log_event
from core.redis import broker_key, redis_client

__all__ = [
    "PRIORITY_STEPS",
    "GpuProbe",
    "ResourceReporter",
    "host_usage",
    "process_usage",
    "queue_depths",
    "read_reports",
    "report_key_prefix",
]

log = logging.getLogger(__name__)

# kombu's Redis transport keeps one list per priority step and queue: "<queue>" for step 0 and
# "<queue>\x06\x16<step>" for the others (kombu.transport.redis.Channel.sep, PRIORITY_STEPS).
PRIORITY_STEPS = (0, 3, 6, 9)
_PRIORITY_SEPARATOR = "\x06\x16"
_REPORT_TTL_INTERVALS = 3

GpuProbe = Callable[[], dict[str, Any] | None]


def report_key_prefix(settings: Settings) -> str:
    return broker_key(settings, "deepfakestream:resources:")


def host_usage() -> dict[str, Any]:
    memory = psutil.virtual_memory()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "hostname": socket.gethostname(),
        "cpu_count": psutil.cpu_count() or 0,
        "cpu_percent": psutil.cpu_percent(interval=None),
        "load_1m": round(load[0], 2),
        "memory_total_bytes": int(memory.total),
        "memory_available_bytes": int(memory.available),
        "memory_percent": float(memory.percent),
    }


def process_usage(process: psutil.Process) -> dict[str, Any]:
    """CPU (percent of one core since the previous call for this ``process`` object), resident
    memory and threads of one process."""
    with process.oneshot():
        memory = process.memory_info()
        return {
            "pid": process.pid,
            "cpu_percent": round(process.cpu_percent(interval=None), 1),
            "rss_bytes": int(memory.rss),
            "memory_percent": round(process.memory_percent(), 2),
            "threads": process.num_threads(),
        }


class ResourceReporter:
    """Writes this process's figures to Redis every ``interval_s`` from a daemon thread."""

    def __init__(
        self,
        settings: Settings,
        *,
        node: str,
        role: str,
        gpu_probe: GpuProbe | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.node = node
        self.role = role
        self.gpu_probe = gpu_probe
        self.interval_s = interval_s or settings.resource_report_interval_s
        self.started_at = datetime.now(UTC)
        self._process = psutil.Process()
        self._process.cpu_percent(interval=None)  # the first call only sets the baseline
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: redis.Redis | None = None
        self._pid = os.getpid()

    @property
    def key(self) -> str:
        return f"{report_key_prefix(self.settings)}{self.node}:{self._pid}"

    def snapshot(self) -> dict[str, Any]:
        gpu = None
        if self.gpu_probe is not None:
            try:
                gpu = self.gpu_probe()
            except Exception as exc:  # a GPU that cannot be read must not stop the reports
                gpu = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        return {
            "node": self.node,
            "role": self.role,
            "process": process_usage(self._process),
            "gpu": gpu,
            "host": host_usage(),
            "started_at": self.started_at.isoformat(),
            "reported_at": datetime.now(UTC).isoformat(),
        }

    def report(self) -> dict[str, Any]:
        """One report, written now; raises redis errors to the caller."""
        document = self.snapshot()
        if self._client is None:
            self._client = redis_client(self.settings)
        ttl = max(1, round(self.interval_s * _REPORT_TTL_INTERVALS))
        self._client.set(self.key, json.dumps(document), ex=ttl)
        return document

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.report()
                if failing:
                    log_event(log, "resources.report.recovered", node=self.node)
                failing = False
            except (redis.RedisError, OSError) as exc:
                if not failing:  # once per outage, not every few seconds
                    log_event(
                        log,
                        "resources.report.failed",
                        level=logging.WARNING,
                        node=self.node,
                        error=str(exc)[:200],
                    )
                failing = True
            self._stop.wait(self.interval_s)

    def start(self) -> ResourceReporter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="resource-reporter", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._client is not None:
            with contextlib.suppress(redis.RedisError):  # the report expires by itself anyway
                self._client.delete(self.key)
            self._client.close()


def read_reports(settings: Settings, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every live worker report, oldest node first, with its age in seconds."""
    now = now or datetime.now(UTC)
    client = redis_client(settings)
    try:
        keys = sorted(client.scan_iter(match=f"{report_key_prefix(settings)}*", count=200))
        values = client.mget(keys) if keys else []
    finally:
        client.close()
    reports = []
    for raw in values:
        if raw is None:  # expired between SCAN and MGET
            continue
        try:
            report = json.loads(raw)
            reported_at = datetime.fromisoformat(report["reported_at"])
        except (ValueError, KeyError, TypeError):
            continue
        report["age_s"] = round(max((now - reported_at).total_seconds(), 0.0), 2)
        reports.append(report)
    reports.sort(key=lambda r: (str(r.get("node")), int(r.get("process", {}).get("pid", 0))))
    return reports


def _queue_keys(settings: Settings, queue: str) -> list[tuple[int, str]]:
    prefix = settings.broker_key_prefix
    return [
        (step, f"{prefix}{queue}" if step == 0 else f"{prefix}{queue}{_PRIORITY_SEPARATOR}{step}")
        for step in PRIORITY_STEPS
    ]


def queue_depths(settings: Settings, queues: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Messages waiting in each queue (not those a worker holds unacknowledged), in all and by
    priority step."""
    client = redis_client(settings)
    try:
        pipeline = client.pipeline(transaction=False)
        layout = []
        for queue in queues:
            for step, key in _queue_keys(settings, queue):
                pipeline.llen(key)
                layout.append((queue, step))
        lengths = pipeline.execute()
    finally:
        client.close()
    depths: dict[str, dict[str, Any]] = {}
    for (queue, step), length in zip(layout, lengths, strict=True):
        entry = depths.setdefault(queue, {"waiting": 0, "by_priority": {}})
        entry["waiting"] += int(length)
        entry["by_priority"][str(step)] = int(length)
    return depths
