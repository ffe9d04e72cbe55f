"""The API benchmark's request loads: throughput runs, the 1 GiB streamed upload and waiting clients."""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.stats import percentile

__all__ = [
    "FLAT_LIMIT_MB",
    "ONE_JOB_P99_TARGET_MS",
    "benchmark",
    "process_cpu_s",
    "process_rss_mb",
    "run_load",
    "stream_upload",
    "waiters_on_one_job",
    "waiting_clients",
]

# 200 waiters of one job: the API reads the row once for all of them, so every answer follows the
# end closely (each reading it itself took seconds for 320 waiters).
ONE_JOB_P99_TARGET_MS = 100.0
FLAT_LIMIT_MB = 64.0  # RSS growth allowed while 1 GiB streams through (one storage part is 8 MiB)


def run_load(
    name: str,
    requests: int,
    concurrency: int,
    call: Callable[[httpx.Client, int], httpx.Response],
    base_url: str,
    headers: dict[str, str],
    api_pid: int | None = None,
) -> dict[str, Any]:
    """``requests`` calls over ``concurrency`` threads, each with its own keep-alive connection;
    with ``api_pid``, the API process's CPU time per request too (steadier than latency on a
    shared machine)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=60.0) as client:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                started = time.perf_counter()
                response = call(client, index)
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    cpu_before = process_cpu_s(api_pid) if api_pid else None
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - started
    api_cpu_ms = (
        None
        if api_pid is None or cpu_before is None
        else round((process_cpu_s(api_pid) - cpu_before) / requests * 1000, 2)
    )
    return {
        "api_cpu_ms_per_request": api_cpu_ms,
        "name": name,
        "requests": requests,
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "throughput_rps": round(requests / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors": sum(v for k, v in statuses.items() if k >= 500),
    }


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _upload_body(boundary: str, size: int) -> Iterator[bytes]:
    """A multipart body whose file part is ``size`` bytes of an MP4-looking stream, made on the fly."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    header = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    chunk = bytes(1024 * 1024)
    yield header
    remaining = size - len(header)
    while remaining > 0:
        piece = chunk[: min(len(chunk), remaining)]
        remaining -= len(piece)
        yield piece
    yield f"\r\n--{boundary}--\r\n".encode()


def stream_upload(base_url: str, headers: dict[str, str], api_pid: int, size: int) -> dict[str, Any]:
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(process_rss_mb(api_pid))
            stop.wait(0.05)

    baseline = process_rss_mb(api_pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    boundary = secrets.token_hex(8)
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, headers=headers, timeout=600.0) as client:
        response = client.post(
            "/v1/jobs",
            content=_upload_body(boundary, size),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    after = process_rss_mb(api_pid)
    if response.status_code != 202:
        raise RuntimeError(f"the 1 GiB upload answered {response.status_code}: {response.text[:300]}")
    job_id = response.json()["id"]
    with httpx.Client(base_url=base_url, headers=headers, timeout=120.0) as client:
        client.delete(f"/v1/jobs/{job_id}")
    peak = max([*samples, after])
    return {
        "bytes": size,
        "status": response.status_code,
        "seconds": round(elapsed, 2),
        "mb_per_s": round(size / 1024**2 / elapsed, 1),
        "rss_baseline_mb": round(baseline, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_after_mb": round(after, 1),
        "rss_growth_mb": round(peak - baseline, 1),
        "samples": len(samples),
        "flat": peak - baseline < FLAT_LIMIT_MB,
        "flat_limit_mb": FLAT_LIMIT_MB,
    }


def benchmark(
    base_url: str,
    headers: dict[str, str],
    video: bytes,
    *,
    creates: int,
    polls: int,
    lists: int,
    concurrency: int,
    api_pid: int | None = None,
) -> list[dict[str, Any]]:
    job_ids: list[str] = []
    ids_lock = threading.Lock()

    def create(client: httpx.Client, index: int) -> httpx.Response:
        response = client.post(
            "/v1/jobs",
            files={"file": ("clip.mp4", video, "video/mp4")},
            data={"external_id": f"bench-{index}"},
        )
        if response.status_code == 202:
            with ids_lock:
                job_ids.append(response.json()["id"])
        return response

    def poll(client: httpx.Client, index: int) -> httpx.Response:
        return client.get(f"/v1/jobs/{random.choice(job_ids)}")

    def page(client: httpx.Client, index: int) -> httpx.Response:
        return client.get("/v1/jobs", params={"limit": "50"})

    if creates + polls + lists == 0:
        return []
    # The warm-up's jobs are also what the polls read when no creates run.
    run_load("warm-up", 20, 2, create, base_url, headers)
    parts: list[tuple[str, int, Callable[[httpx.Client, int], httpx.Response]]] = [
        ("create job (multipart, 3 KB video)", creates, create),
        ("poll job (GET /v1/jobs/{id})", polls, poll),
        ("list jobs (GET /v1/jobs?limit=50)", lists, page),
    ]
    return [
        run_load(name, count, concurrency, call, base_url, headers, api_pid)
        for name, count, call in parts
        if count > 0
    ]


def _end_job(settings: Any, job_id: str) -> float:
    """Ends the queued job as a worker would (processing, then succeeded, one commit); returns the
    perf_counter() once the commit (and so the event's publication) has returned."""
    import uuid

    from core.db import get_session_factory
    from lifecycle.jobs import transition_job
    from lifecycle.transitions import JOB_CLAIM, JOB_SUCCEED

    with get_session_factory(settings)() as session, session.begin():
        job = uuid.UUID(job_id)
        transition_job(session, job_id=job, transition=JOB_CLAIM)
        transition_job(
            session,
            job_id=job,
            transition=JOB_SUCCEED,
            values={"verdict": "real", "score": 0.1, "threshold": 0.5},
        )
    return time.perf_counter()


def waiting_clients(
    base_url: str,
    headers: dict[str, str],
    video: bytes,
    *,
    api_pid: int | None,
    settings: Any,
    waiters: int,
    end_every_ms: float,
) -> dict[str, Any]:
    """``waiters`` clients on GET /v1/jobs/{id}?wait=30 at once, one job each; the jobs end one
    every ``end_every_ms``; the time from each end's commit to its waiter's answer."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=60.0) as client:
        job_ids = []
        for index in range(waiters):
            response = client.post(
                "/v1/jobs",
                files={"file": ("clip.mp4", video, "video/mp4")},
                data={"external_id": f"wait-{index}"},
            )
            response.raise_for_status()
            job_ids.append(response.json()["id"])
    rss_before = process_rss_mb(api_pid) if api_pid else None
    answered: dict[str, float] = {}
    ended: dict[str, float] = {}
    statuses: dict[str, int] = {}
    samples: list[float] = []

    async def wait_one(http: httpx.AsyncClient, job_id: str) -> None:
        response = await http.get(f"/v1/jobs/{job_id}", params={"wait": "30"})
        answered[job_id] = time.perf_counter()
        key = f"{response.status_code} {response.json().get('status')}"
        statuses[key] = statuses.get(key, 0) + 1

    async def scenario() -> None:
        limits = httpx.Limits(max_connections=waiters + 10, max_keepalive_connections=waiters + 10)
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60.0, limits=limits) as http:
            tasks = [asyncio.create_task(wait_one(http, job_id)) for job_id in job_ids]
            # Every client connected and waiting; sample the API's memory meanwhile.
            for _ in range(30):
                await asyncio.sleep(0.1)
                if api_pid:
                    samples.append(process_rss_mb(api_pid))
            for job_id in job_ids:
                ended[job_id] = await asyncio.to_thread(_end_job, settings, job_id)
                await asyncio.sleep(end_every_ms / 1000)
            await asyncio.gather(*tasks)

    started = time.perf_counter()
    asyncio.run(scenario())
    wall = time.perf_counter() - started
    delays = [answered[job_id] - ended[job_id] for job_id in job_ids if job_id in answered]
    during = max(samples) if samples else None
    return {
        "waiters": waiters,
        "wait_s": 30,
        "end_every_ms": end_every_ms,
        "wall_s": round(wall, 2),
        "statuses": statuses,
        "end_to_answer_p50_ms": round(percentile(delays, 50) * 1000, 2),
        "end_to_answer_p99_ms": round(percentile(delays, 99) * 1000, 2),
        "end_to_answer_max_ms": round(max(delays) * 1000, 2),
        "rss_before_mb": None if rss_before is None else round(rss_before, 1),
        "rss_during_mb": None if during is None else round(during, 1),
        "rss_per_waiter_kb": (
            None if rss_before is None or during is None else round((during - rss_before) * 1024 / waiters, 1)
        ),
    }


def waiters_on_one_job(
    base_url: str,
    headers: dict[str, str],
    video: bytes,
    *,
    api_pid: int | None,
    settings: Any,
    waiters: int,
) -> dict[str, Any]:
    """``waiters`` clients on GET /v1/jobs/{id}?wait=30 of the same job; the job ends once; the
    time from the end's commit to each answer, and the API's CPU time from the end to the last
    answer. Each client is a bare HTTP/1.1 connection (asyncio streams): an httpx client per
    waiter costs this process more than the API spends answering, and on two cores that cost
    lands in the figure."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=60.0) as client:
        response = client.post("/v1/jobs", files={"file": ("clip.mp4", video, "video/mp4")})
        response.raise_for_status()
        job_id = response.json()["id"]
    parts = httpx.URL(base_url)
    head = "".join(
        [
            f"GET /v1/jobs/{job_id}?wait=30 HTTP/1.1\r\nHost: {parts.host}:{parts.port}\r\n",
            *(f"{name}: {value}\r\n" for name, value in headers.items()),
            "Connection: close\r\n\r\n",
        ]
    ).encode()
    answers: list[tuple[float, bytes, bytes]] = []

    async def wait_one() -> None:
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        writer.write(head)
        await writer.drain()
        status_and_headers = await reader.readuntil(b"\r\n\r\n")
        at = time.perf_counter()
        body = await reader.read()
        answers.append((at, status_and_headers, body))
        writer.close()

    ended = 0.0
    cpu_after_end = 0.0

    async def scenario() -> None:
        nonlocal ended, cpu_after_end
        tasks = [asyncio.create_task(wait_one()) for _ in range(waiters)]
        await asyncio.sleep(3.0)  # every client connected and waiting
        cpu_before = process_cpu_s(api_pid) if api_pid else 0.0
        ended = await asyncio.to_thread(_end_job, settings, job_id)
        await asyncio.gather(*tasks)
        cpu_after_end = (process_cpu_s(api_pid) - cpu_before) if api_pid else 0.0

    asyncio.run(scenario())
    statuses: dict[str, int] = {}
    for _, status_and_headers, body in answers:
        key = f"{status_and_headers.split(b' ', 2)[1].decode()} {json.loads(body).get('status')}"
        statuses[key] = statuses.get(key, 0) + 1
    delays = [at - ended for at, _, _ in answers]
    p99_ms = round(percentile(delays, 99) * 1000, 2)
    return {
        "waiters": waiters,
        "wait_s": 30,
        "client": "one bare HTTP/1.1 connection per waiter (asyncio streams)",
        "statuses": statuses,
        "end_to_answer_p50_ms": round(percentile(delays, 50) * 1000, 2),
        "end_to_answer_p99_ms": p99_ms,
        "end_to_answer_max_ms": round(max(delays) * 1000, 2),
        "api_cpu_ms_after_end": round(cpu_after_end * 1000, 1) if api_pid else None,
        "p99_target_ms": ONE_JOB_P99_TARGET_MS,
        "within_target": p99_ms <= ONE_JOB_P99_TARGET_MS,
    }
