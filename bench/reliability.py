"""Reliability benchmark: a batch of jobs through two workers under faults, hostile input and polling.

A batch of short generated videos goes through two worker processes on this machine while faults
are injected (a worker killed with SIGKILL mid-run, the broker restarted without persistence) and
a corpus of hostile media is submitted beside it, with the API polled all along; then hostile
requests (a 400 MB body without a key, an endless chunked body, a trickled body, a webhook
receiver that trickles its headers, an upload swapped by a late PUT), with the API's memory peak.
Then every job is checked in the database: succeeded exactly once, nothing lost, no row stored
twice. Not a test (the suite runs ``run()`` with 50 jobs and asserts on its figures): it prints a
table and writes JSON.

    .venv/bin/python bench/reliability.py                  # 1,000 jobs → bench/results/reliability.json
    .venv/bin/python bench/reliability.py --jobs 50 --out /tmp/reliability.json

Everything runs on private services (a Redis, a PostgreSQL cluster and moto S3 on free ports of
127.0.0.1), so the machine's shared PostgreSQL and Redis are never touched or restarted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402

from bench.stats import percentile  # noqa: E402
from core.models import Batch, Job  # noqa: E402
from tests.utils.bad_media import HOSTILE_MEDIA_KINDS, VALID_HOSTILE_MEDIA_KINDS, make_hostile_media  # noqa: E402
from tests.utils.hostile_requests import try_hostile_requests  # noqa: E402
from tests.utils.media import make_face_video  # noqa: E402
from tests.utils.stack import SOURCE_BUCKET, TERMINAL, PrivateStack, private_stack  # noqa: E402

__all__ = ["BENCH_SETTINGS", "run"]

RESULTS = REPO / "bench" / "results" / "reliability.json"

BENCH_SETTINGS = {
    "DEFAULT_SAMPLE_FPS": "1",
    "DEFAULT_SEGMENT_SECONDS": "2",
    "EXPLAIN_TOP_K": "0",
    "MAX_JOBS_IN_FLIGHT_PER_TENANT": "100000",
    "TASK_SOFT_TIME_LIMIT_S": "60",
    "TASK_TIME_LIMIT_S": "75",
    "BROKER_VISIBILITY_TIMEOUT_S": "300",
    # A backlog of a thousand items waits far longer than this; lost messages are found by the
    # reconciler's broker-loss check, not by age.
    "RECONCILE_QUEUED_AFTER_S": "7200",
    "RATE_LIMIT_PER_S": "2000",
    "RATE_LIMIT_BURST": "4000",
    # Short deadlines, so that the hostile requests (a trickled body, a trickling webhook
    # receiver on the loopback interface) are answered within seconds.
    "BODY_TIMEOUT_S": "5",
    "BODY_IDLE_TIMEOUT_S": "3",
    "WEBHOOK_ALLOW_PRIVATE": "true",
    "WEBHOOK_TIMEOUT_S": "3",
    "WEBHOOK_CONNECT_TIMEOUT_S": "2",
}


@dataclass
class _Poller:
    """Clients polling the API the way an impatient user does, timing every answer."""

    base_url: str
    headers: dict[str, str]
    job_ids: list[str]
    batch_id: str
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _loop(self, seed: int) -> None:
        chooser = random.Random(seed)
        with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=60) as client:
            while not self._stop.is_set():
                path = (
                    f"/v1/batches/{self.batch_id}"
                    if chooser.random() < 0.2
                    else f"/v1/jobs/{chooser.choice(self.job_ids)}"
                )
                started = time.perf_counter()
                try:
                    status = client.get(path).status_code
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors[type(exc).__name__] += 1
                    time.sleep(0.5)
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                with self._lock:
                    self.latencies_ms.append(elapsed)
                    self.statuses[status] += 1
                self._stop.wait(0.1)

    def __enter__(self) -> _Poller:
        self._threads = [threading.Thread(target=self._loop, args=(seed,), daemon=True) for seed in range(2)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            values = list(self.latencies_ms)
            return {
                "requests": len(values),
                "clients": len(self._threads),
                "p50_ms": round(percentile(values, 50), 1),
                "p95_ms": round(percentile(values, 95), 1),
                "p99_ms": round(percentile(values, 99), 1),
                "max_ms": round(max(values), 1) if values else None,
                "mean_ms": round(statistics.fmean(values), 1) if values else None,
                "statuses": {str(code): count for code, count in sorted(self.statuses.items())},
                "transport_errors": dict(self.errors),
            }


def _batch_progress(stack: PrivateStack, batch_id: uuid.UUID) -> int:
    with stack.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.batch_id == batch_id, Job.status.in_(TERMINAL))
            )
            or 0
        )


# One picture in a video container (a still, or a video of one frame) is an image job.
IMAGE_JOB_KINDS = ("single_frame_image", "single_frame_video")


def _submit_hostile(stack: PrivateStack, headers: dict[str, str], media_dir: Path) -> list[dict[str, Any]]:
    """The hostile corpus, each as an interactive job; answers recorded."""
    tried = []
    for kind in (*HOSTILE_MEDIA_KINDS, *VALID_HOSTILE_MEDIA_KINDS):
        path = make_hostile_media(kind, media_dir / f"{kind}.mp4")
        response = stack.post_video(headers, path)
        body = response.json() if response.content else {}
        tried.append({"kind": kind, "status": response.status_code, "body": body})
    return tried


def _judge_hostile(
    stack: PrivateStack, headers: dict[str, str], tried: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    outcomes = []
    for item in tried:
        kind, status, body = item["kind"], item["status"], item["body"]
        if status == 202:
            job = stack.wait_job(headers, body["id"], timeout_s=600)
            code = (job.get("error") or {}).get("code")
            # Every hostile kind must end as a failed job with an error code (or a 4xx below);
            # the unusual but valid ones (variable frame rates, several streams, crowds) succeed, and
            # so do the one-picture files, analysed as image jobs.
            if kind in VALID_HOSTILE_MEDIA_KINDS or kind in IMAGE_JOB_KINDS:
                typed = job["status"] == "succeeded"
            else:
                typed = job["status"] == "failed" and bool(code) and code != "internal_error"
            outcomes.append({"kind": kind, "answer": 202, "job": job["status"], "code": code, "typed": typed})
        else:
            code = (body.get("error") or {}).get("code")
            typed = 400 <= status < 500 and bool(code)
            outcomes.append({"kind": kind, "answer": status, "job": None, "code": code, "typed": typed})
    return outcomes


def _kill_worker(stack: PrivateStack, index: int) -> None:
    import signal

    stack.workers[index].kill_group(signal.SIGKILL)
    stack.restart_worker(index)


def run(
    *, jobs: int, root: Path, faults: bool = True, hostile: bool = True, timeout_s: float | None = None
) -> dict[str, Any]:
    """Runs the benchmark in ``root`` and returns its figures (see the module's docstring)."""
    timeout_s = timeout_s or 600 + jobs * 6.0
    started_at = time.time()
    media_dir = root / "media"
    clip = make_face_video(media_dir / "clip.mp4", seconds=1.0, width=160, height=120, fps=10.0)
    with private_stack(
        root / "stack", workers=2, extra=BENCH_SETTINGS, queues="probe,analyze,webhooks,maintenance"
    ) as stack:
        tenant = stack.new_key()
        stranger = stack.new_key()
        s3 = stack.s3()
        data = clip.path.read_bytes()
        sources = []
        for index in range(jobs):
            key = f"bench/{index:05d}.mp4"
            s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=data)
            sources.append(f"s3://{SOURCE_BUCKET}/{key}")
        items = [
            {"source": source, "external_id": f"item-{index:05d}"} for index, source in enumerate(sources)
        ]

        load_started = time.monotonic()
        with stack.client(tenant, timeout_s=300) as client:
            created = client.post("/v1/batches", json={"items": items, "name": f"reliability-{jobs}"})
        if created.status_code != 202:
            raise RuntimeError(f"the batch was refused: {created.status_code} {created.text[:500]}")
        batch_id = uuid.UUID(created.json()["id"])
        with stack.session() as session:
            job_ids = [
                str(job_id) for job_id in session.scalars(select(Job.id).where(Job.batch_id == batch_id))
            ]

        injected: list[dict[str, Any]] = []
        planned = [("worker_sigkill", 0.25), ("broker_restart", 0.5)] if faults else []
        hostile_tried: list[dict[str, Any]] = []
        deadline = load_started + timeout_s
        with _Poller(stack.base_url, tenant, job_ids, str(batch_id)) as poller:
            if hostile:
                hostile_tried = _submit_hostile(stack, stranger, media_dir)
            while True:
                done = _batch_progress(stack, batch_id)
                while planned and done >= planned[0][1] * jobs:
                    kind, _ = planned.pop(0)
                    at = time.monotonic() - load_started
                    if kind == "worker_sigkill":
                        _kill_worker(stack, 1)
                    else:
                        stack.redis.restart()
                    injected.append({"kind": kind, "at_s": round(at, 1), "jobs_finished_before": done})
                if done >= jobs:
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(1.0)
            hostile_outcomes = _judge_hostile(stack, stranger, hostile_tried) if hostile else []
            if hostile:
                # Hostile requests and receivers (bodies, webhooks, uploads), with the API's memory.
                hostile_outcomes += try_hostile_requests(stack, stranger, media_dir)
        load_s = time.monotonic() - load_started

        ids = [uuid.UUID(job_id) for job_id in job_ids]
        with stack.session() as session:
            states = Counter(session.scalars(select(Job.status).where(Job.batch_id == batch_id)).all())
            attempts = Counter(session.scalars(select(Job.attempts).where(Job.batch_id == batch_id)).all())
            per_index = session.scalar(
                select(func.count()).select_from(
                    select(Job.batch_index)
                    .where(Job.batch_id == batch_id)
                    .group_by(Job.batch_index)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
            batch = session.get(Batch, batch_id)
            assert batch is not None
            batch_finished = batch.jobs_finished
        duplicates = stack.duplicate_rows(ids)
        finalized = Counter(stack.finalized_counts(ids).values())
        api_errors = stack.api_server_errors()
        poll = poller.summary()
        polled_5xx = sum(count for code, count in poll["statuses"].items() if code.startswith("5"))
        worker_crashes = sum(line.count('"internal_error"') for line in stack.worker_logs().splitlines())

    lost = jobs - len(ids) + sum(count for status, count in states.items() if status not in TERMINAL)
    duplicate_total = (
        sum(duplicates.values())
        + int(per_index or 0)
        + sum(count for times, count in finalized.items() if times > 1)
        + max(0, batch_finished - jobs)
    )
    return {
        "jobs": jobs,
        "workers": 2,
        "video": {
            "seconds": clip.seconds,
            "width": clip.width,
            "height": clip.height,
            "fps": clip.fps,
            "sample_fps": float(BENCH_SETTINGS["DEFAULT_SAMPLE_FPS"]),
            "bytes": len(data),
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        "wall_s": round(load_s, 1),
        "throughput_jobs_per_min": round(60 * sum(states.values()) / load_s, 1) if load_s else None,
        "timed_out": load_s >= timeout_s,
        "faults_injected": injected,
        "jobs_succeeded": states.get("succeeded", 0),
        "jobs_failed": states.get("failed", 0),
        "jobs_lost": lost,
        "duplicate_rows": duplicate_total,
        "duplicates": {
            **duplicates,
            "jobs_per_item": int(per_index or 0),
            "jobs_finalized_twice": sum(count for times, count in finalized.items() if times > 1),
            "batch_count_overrun": max(0, batch_finished - jobs),
        },
        "jobs_never_finalized": finalized.get(0, 0),
        "attempts": {str(key): value for key, value in sorted(attempts.items())},
        "server_errors_5xx": len(api_errors) + polled_5xx,
        "task_crashes": worker_crashes,
        "bad_inputs_tried": len(hostile_outcomes),
        "bad_inputs_typed": sum(1 for outcome in hostile_outcomes if outcome["typed"]),
        "bad_inputs": hostile_outcomes,
        "api_peak_rss_mb": max(
            (outcome["api_rss_mb"]["peak"] for outcome in hostile_outcomes if "api_rss_mb" in outcome),
            default=None,
        ),
        "polling": poll,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


def _print_table(result: dict[str, Any]) -> None:
    faults = ", ".join(f"{fault['kind']}@{fault['at_s']}s" for fault in result["faults_injected"])
    rows = [
        ("jobs", result["jobs"]),
        ("succeeded / failed", f"{result['jobs_succeeded']} / {result['jobs_failed']}"),
        ("lost", result["jobs_lost"]),
        ("duplicate rows", result["duplicate_rows"]),
        ("5xx answers", result["server_errors_5xx"]),
        ("faults injected", faults or "none"),
        ("bad inputs typed / tried", f"{result['bad_inputs_typed']} / {result['bad_inputs_tried']}"),
        ("API peak RSS (hostile requests)", f"{result['api_peak_rss_mb']} MB"),
        ("wall time", f"{result['wall_s']} s ({result['throughput_jobs_per_min']} jobs/min)"),
        ("polling p50 / p99 / max", f"{result['polling']['p50_ms']} / {result['polling']['p99_ms']} / "
                                    f"{result['polling']['max_ms']} ms over {result['polling']['requests']}"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="items in the batch (default 1000)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument("--no-faults", action="store_true", help="no worker kill, no broker restart")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix=f"dfs-reliability-{secrets.token_hex(3)}-"))
    try:
        result = run(jobs=args.jobs, root=root, faults=not args.no_faults)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    _print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    clean = (
        result["jobs_lost"] == 0
        and result["duplicate_rows"] == 0
        and result["server_errors_5xx"] == 0
        and result["jobs_succeeded"] == result["jobs"]
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
