"""API benchmark: job creation, polling and listing throughput with p50/p99 latency, measured from a
second process, the API's memory while a 1 GiB upload streams through it (it must stay flat), and
200 clients waiting at once on ``?wait=`` (the API's memory before and during, and the time from a
job's end to its waiter's answer), and 200 clients waiting on one job (the time from its end to
each answer: within ``ONE_JOB_P99_TARGET_MS`` at p99), and the image round trip: a photo with a
face uploaded with ``POST /v1/jobs?wait=`` until its verdict comes back, one after another (and at
``--image-concurrency`` too), median and p99. Not a test: it prints a table and writes JSON.

    .venv/bin/python bench/api.py                       # starts a local API → bench/results/api.json
    .venv/bin/python bench/api.py --api URL --key KEY   # a running API (no memory figure)
    .venv/bin/python bench/api.py --creates 0 --polls 0 --lists 0 --waiters 0 --skip-upload \
        --image-round-trips 10 --out bench/results/api-image.json   # the image round trip alone

The local run uses this machine's PostgreSQL (a fresh database) and Redis (a key prefix of its
own), a local storage directory, and one uvicorn process. For the image round trip, which runs
first, one worker (one pool process, the shipped model) consumes the probe and analyze queues; it
is stopped before the rest, so there no worker runs: jobs stay queued, and the figures are the
API's own cost, not analysis time. For the waiting clients the bench ends the jobs itself the way
a worker does (a committed move to ``succeeded``, whose event goes out on Redis after the commit),
one every ``--end-every-ms``. A count of 0 skips its part (``--creates``, ``--polls``,
``--lists``, ``--waiters``, ``--image-round-trips``).

Whether a training run (``deepfakestream train``) was using the cores, and the load average, are
recorded with the figures: on two shared cores they move the latencies more than any code change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results" / "api.json"
WORK_DIR = REPO / "var" / "bench" / "api"
GIB = 1024**3
WAITERS = 200
# 200 waiters of one job: the API reads the row once for all of them, so every answer follows the
# end closely (each reading it itself took seconds for 320 waiters).
ONE_JOB_P99_TARGET_MS = 100.0
FLAT_LIMIT_MB = 64.0  # RSS growth allowed while 1 GiB streams through (one storage part is 8 MiB)
BENCH_RATE_LIMIT_PER_S = 100_000  # per-tenant buckets far above any rate measured here
IMAGE_ROUND_TRIPS = 30
IMAGE_WARM_UP_TRIPS = 2  # the first images through a fresh worker pay for lazy imports and caches
IMAGE_TRIP_DEADLINE_S = 300.0  # a trip still unended by then counts as not ended
ENDED = frozenset({"succeeded", "failed", "canceled"})


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _run_load(
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

    cpu_before = _cpu_s(api_pid) if api_pid else None
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - started
    api_cpu_ms = (
        None
        if api_pid is None or cpu_before is None
        else round((_cpu_s(api_pid) - cpu_before) / requests * 1000, 2)
    )
    return {
        "api_cpu_ms_per_request": api_cpu_ms,
        "name": name,
        "requests": requests,
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "throughput_rps": round(requests / wall, 1),
        "p50_ms": round(_percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors": sum(v for k, v in statuses.items() if k >= 500),
    }


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
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


def _stream_upload(base_url: str, headers: dict[str, str], api_pid: int, size: int) -> dict[str, Any]:
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(_rss_mb(api_pid))
            stop.wait(0.05)

    baseline = _rss_mb(api_pid)
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
    after = _rss_mb(api_pid)
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


def _benchmark(
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
    _run_load("warm-up", 20, 2, create, base_url, headers)
    parts: list[tuple[str, int, Callable[[httpx.Client, int], httpx.Response]]] = [
        ("create job (multipart, 3 KB video)", creates, create),
        ("poll job (GET /v1/jobs/{id})", polls, poll),
        ("list jobs (GET /v1/jobs?limit=50)", lists, page),
    ]
    return [
        _run_load(name, count, concurrency, call, base_url, headers, api_pid)
        for name, count, call in parts
        if count > 0
    ]


def _machine_load() -> dict[str, Any]:
    """Whether a training run shares the cores now, and the 1-minute load average."""
    training = False
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"deepfakestream") for arg in argv) and b"train" in argv:
            training = True
            break
    return {"training_running": training, "load_average_1m": round(os.getloadavg()[0], 2)}


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


def _waiting_clients(
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
    rss_before = _rss_mb(api_pid) if api_pid else None
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
                    samples.append(_rss_mb(api_pid))
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
        "end_to_answer_p50_ms": round(_percentile(delays, 50) * 1000, 2),
        "end_to_answer_p99_ms": round(_percentile(delays, 99) * 1000, 2),
        "end_to_answer_max_ms": round(max(delays) * 1000, 2),
        "rss_before_mb": None if rss_before is None else round(rss_before, 1),
        "rss_during_mb": None if during is None else round(during, 1),
        "rss_per_waiter_kb": (
            None if rss_before is None or during is None else round((during - rss_before) * 1024 / waiters, 1)
        ),
    }


def _waiters_on_one_job(
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
        cpu_before = _cpu_s(api_pid) if api_pid else 0.0
        ended = await asyncio.to_thread(_end_job, settings, job_id)
        await asyncio.gather(*tasks)
        cpu_after_end = (_cpu_s(api_pid) - cpu_before) if api_pid else 0.0

    asyncio.run(scenario())
    statuses: dict[str, int] = {}
    for _, status_and_headers, body in answers:
        key = f"{status_and_headers.split(b' ', 2)[1].decode()} {json.loads(body).get('status')}"
        statuses[key] = statuses.get(key, 0) + 1
    delays = [at - ended for at, _, _ in answers]
    p99_ms = round(_percentile(delays, 99) * 1000, 2)
    return {
        "waiters": waiters,
        "wait_s": 30,
        "client": "one bare HTTP/1.1 connection per waiter (asyncio streams)",
        "statuses": statuses,
        "end_to_answer_p50_ms": round(_percentile(delays, 50) * 1000, 2),
        "end_to_answer_p99_ms": p99_ms,
        "end_to_answer_max_ms": round(max(delays) * 1000, 2),
        "api_cpu_ms_after_end": round(cpu_after_end * 1000, 1) if api_pid else None,
        "p99_target_ms": ONE_JOB_P99_TARGET_MS,
        "within_target": p99_ms <= ONE_JOB_P99_TARGET_MS,
    }


def _astronaut_jpeg() -> bytes:
    """The test suite's photo with a face (scikit-image's astronaut, 512×384), as a JPEG."""
    from PIL import Image

    from tests.utils.images import astronaut, encode

    return encode(Image.fromarray(astronaut()), "JPEG", quality=90)


def _iso_s(value: Any) -> float | None:
    from datetime import datetime

    return None if not value else datetime.fromisoformat(value).timestamp()


def _image_round_trip(client: httpx.Client, image: bytes, wait_s: int) -> dict[str, Any]:
    """One photo uploaded with ``POST /v1/jobs?wait=`` and, if the wait ran out first, followed
    with ``GET /v1/jobs/{id}?wait=`` until the job ends; the seconds from the upload's start to the
    answer that carries the ended job."""
    started = time.perf_counter()
    response = client.post(
        "/v1/jobs",
        params={"wait": str(wait_s)},
        files={"file": ("astronaut.jpg", image, "image/jpeg")},
    )
    follow_ups = 0
    job: dict[str, Any] = response.json() if response.is_success else {}
    while job and job.get("status") not in ENDED and time.perf_counter() - started < IMAGE_TRIP_DEADLINE_S:
        response = client.get(f"/v1/jobs/{job['id']}", params={"wait": str(wait_s)})
        follow_ups += 1
        job = response.json() if response.is_success else {}
    elapsed = time.perf_counter() - started
    created, began, finished = (_iso_s(job.get(name)) for name in ("created_at", "started_at", "finished_at"))
    return {
        "seconds": elapsed,
        "http_status": response.status_code,
        "status": job.get("status"),
        "verdict": job.get("verdict"),
        "media_type": job.get("media_type"),
        "faces": len(job.get("faces") or []),
        "follow_ups": follow_ups,
        "model": job.get("model"),
        "created_to_finished_s": None if created is None or finished is None else finished - created,
        "started_to_finished_s": None if began is None or finished is None else finished - began,
    }


def _counts(values: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return dict(sorted(counts.items()))


def _ms(values: list[float], q: float) -> float | None:
    return round(_percentile(values, q) * 1000, 1) if values else None


def _image_round_trips(
    base_url: str, headers: dict[str, str], image: bytes, *, trips: int, concurrency: int, wait_s: int
) -> dict[str, Any]:
    """``trips`` round trips over ``concurrency`` threads, each with its own keep-alive connection."""
    outcomes: list[dict[str, Any]] = []
    lock = threading.Lock()
    counter = iter(range(trips))

    def worker() -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=wait_s + 60.0) as client:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                outcome = _image_round_trip(client, image, wait_s)
                with lock:
                    outcomes.append(outcome)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - started
    succeeded = [outcome for outcome in outcomes if outcome["status"] == "succeeded"]
    latencies = [outcome["seconds"] for outcome in succeeded]
    in_platform = [o["created_to_finished_s"] for o in succeeded if o["created_to_finished_s"] is not None]
    analysis = [o["started_to_finished_s"] for o in succeeded if o["started_to_finished_s"] is not None]
    return {
        "name": f"image round trip (POST ?wait={wait_s}, {len(image) // 1024} KB JPEG)",
        "trips": trips,
        "concurrency": concurrency,
        "wall_s": round(wall, 2),
        "verdicts_per_s": round(len(succeeded) / wall, 2),
        "succeeded": len(succeeded),
        # Upload start to the answer carrying the verdict, succeeded trips only.
        "p50_ms": _ms(latencies, 50),
        "p99_ms": _ms(latencies, 99),
        "min_ms": _ms(latencies, 0),
        "max_ms": _ms(latencies, 100),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        # The job's own created_at → finished_at (queue wait plus analysis), and started_at →
        # finished_at (analysis): what the round trip spends outside them is upload and answer.
        "job_created_to_finished_p50_ms": _ms(in_platform, 50),
        "job_started_to_finished_p50_ms": _ms(analysis, 50),
        "statuses": _counts([outcome["status"] for outcome in outcomes]),
        "http_statuses": _counts([outcome["http_status"] for outcome in outcomes]),
        "verdicts": _counts([outcome["verdict"] for outcome in succeeded]),
        "media_types": _counts([outcome["media_type"] for outcome in outcomes]),
        "faces": _counts([outcome["faces"] for outcome in succeeded]),
        "follow_up_gets": sum(outcome["follow_ups"] for outcome in outcomes),
        "server_errors": sum(1 for outcome in outcomes if outcome["http_status"] >= 500),
        "model": next((outcome["model"] for outcome in succeeded if outcome["model"]), None),
    }


def _image_section(
    base_url: str, headers: dict[str, str], *, trips: int, concurrency: int, wait_s: int, worker: str
) -> dict[str, Any]:
    image = _astronaut_jpeg()
    warm_up = _image_round_trips(
        base_url, headers, image, trips=IMAGE_WARM_UP_TRIPS, concurrency=1, wait_s=wait_s
    )
    # Without a worker behind the API every trip would run to its deadline: stop at the first.
    if warm_up["succeeded"] < IMAGE_WARM_UP_TRIPS:
        raise RuntimeError(
            f"the warm-up photos did not all succeed (statuses {warm_up['statuses']}, HTTP "
            f"{warm_up['http_statuses']}): is a worker consuming the probe and analyze queues?"
        )
    runs = [_image_round_trips(base_url, headers, image, trips=trips, concurrency=1, wait_s=wait_s)]
    if concurrency > 1:
        runs.append(
            _image_round_trips(base_url, headers, image, trips=trips, concurrency=concurrency, wait_s=wait_s)
        )
    model = next((run.pop("model") for run in runs if run.get("model")), None)
    for run in runs:
        run.pop("model", None)
    return {
        "image": "scikit-image astronaut, 384×512 px (width × height), JPEG quality 90",
        "image_bytes": len(image),
        "wait_s": wait_s,
        "warm_up_trips": IMAGE_WARM_UP_TRIPS,
        "worker": worker,
        "model": None
        if model is None
        else {k: model.get(k) for k in ("name", "version", "sha256", "trained", "threshold")},
        "runs": runs,
    }


def _image_failed(section: dict[str, Any] | None) -> bool:
    return section is not None and any(
        run["succeeded"] < run["trips"] or run["server_errors"] for run in section["runs"]
    )


def _print_table(
    loads: list[dict[str, Any]],
    upload: dict[str, Any] | None,
    waiting: dict[str, Any] | None = None,
    load: dict[str, Any] | None = None,
    one_job: dict[str, Any] | None = None,
    image: dict[str, Any] | None = None,
) -> None:
    if image is not None:
        model = image["model"] or {}
        print(
            f"image round trip: {image['image']} ({image['image_bytes'] // 1024} KB), upload → verdict "
            f"with ?wait={image['wait_s']}; {image['worker']}; model {model.get('name')} "
            f"{model.get('version')}"
        )
        print(
            f"{'trips':>6} {'conc':>5} {'ok':>4} {'verdicts/s':>10} {'p50 ms':>9} {'p99 ms':>9} "
            f"{'max ms':>9} {'job p50 ms':>11} {'analysis p50':>13} {'5xx':>4}  verdicts"
        )
        for run in image["runs"]:
            print(
                f"{run['trips']:>6} {run['concurrency']:>5} {run['succeeded']:>4} "
                f"{run['verdicts_per_s']:>10} {run['p50_ms']!s:>9} {run['p99_ms']!s:>9} {run['max_ms']!s:>9} "
                f"{run['job_created_to_finished_p50_ms']!s:>11} "
                f"{run['job_started_to_finished_p50_ms']!s:>13} "
                f"{run['server_errors']:>4}  {run['verdicts']}"
            )
    if loads:
        if image is not None:
            print()
        print(
            f"{'operation':40} {'req':>6} {'conc':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'5xx':>4} "
            f"{'API CPU ms/req':>15}"
        )
    for row in loads:
        print(
            f"{row['name']:40} {row['requests']:>6} {row['concurrency']:>5} {row['throughput_rps']:>8} "
            f"{row['p50_ms']:>8} {row['p99_ms']:>8} {row['server_errors']:>4} "
            f"{row.get('api_cpu_ms_per_request') or '':>15}"
        )
    if waiting is not None:
        print(
            f"\n{waiting['waiters']} clients waiting at once (GET ?wait=30, jobs ended one every "
            f"{waiting['end_every_ms']} ms): job end → answer p50 {waiting['end_to_answer_p50_ms']} ms, "
            f"p99 {waiting['end_to_answer_p99_ms']} ms, max {waiting['end_to_answer_max_ms']} ms; "
            f"answers {waiting['statuses']}; API RSS {waiting['rss_before_mb']} MB before, "
            f"{waiting['rss_during_mb']} MB while waiting ({waiting['rss_per_waiter_kb']} KB per waiter)"
        )
    if one_job is not None:
        print(
            f"\n{one_job['waiters']} clients waiting on one job (GET ?wait=30): job end → answer "
            f"p50 {one_job['end_to_answer_p50_ms']} ms, p99 {one_job['end_to_answer_p99_ms']} ms, "
            f"max {one_job['end_to_answer_max_ms']} ms "
            f"({'within' if one_job['within_target'] else 'NOT within'} {one_job['p99_target_ms']:g} ms "
            f"at p99); API CPU {one_job['api_cpu_ms_after_end']} ms from the end to the last answer; "
            f"answers {one_job['statuses']}"
        )
    if load is not None:
        print(
            f"\nmachine: training run using the cores: {'yes' if load['training_running'] else 'no'}; "
            f"load average {load['load_average_1m']} (start) → {load.get('load_average_1m_end')} (end)"
            f"{'; BUSY: not comparable with a quiet run' if load.get('busy') else ''}"
        )
    if upload is not None:
        print(
            f"\n1 GiB streamed upload: {upload['seconds']} s ({upload['mb_per_s']} MB/s); API RSS "
            f"{upload['rss_baseline_mb']} → peak {upload['rss_peak_mb']} MB "
            f"(growth {upload['rss_growth_mb']} MB, "
            f"{'flat' if upload['flat'] else 'NOT flat'})"
        )


def _local_image_section(
    args: argparse.Namespace, env: dict[str, str], base_url: str, headers: dict[str, str]
) -> dict[str, Any]:
    """The image round trips through one worker with the shipped model. The worker is stopped
    before the other parts: they measure the API alone, with their jobs left queued (the waiting
    clients end theirs themselves, which a worker would race)."""
    from pipeline.checkpoint import DEFAULT_MODEL_PATH
    from tests.utils.platform import start_worker

    worker = start_worker(
        # start_worker waits for the worker's INFO lines saying it is ready.
        {**env, "MODEL_PATH": str(DEFAULT_MODEL_PATH), "LOG_LEVEL": "INFO"},
        log_dir=WORK_DIR / "logs",
        queues="probe,analyze",
        beat=False,
        timeout_s=600.0,
    )
    try:
        return _image_section(
            base_url,
            headers,
            trips=args.image_round_trips,
            concurrency=args.image_concurrency,
            wait_s=args.image_wait_s,
            worker="local: 1 worker, 1 pool process (probe and analyze queues), CPU, shipped model",
        )
    finally:
        worker.stop()


def _local_run(args: argparse.Namespace) -> dict[str, Any]:
    from core.config import load_settings
    from core.db import get_session_factory
    from core.keys import create_api_key
    from tests.utils.platform import (
        clear_broker_keys,
        fresh_database,
        make_small_video,
        platform_env,
        start_api,
    )

    shutil.rmtree(WORK_DIR, ignore_errors=True)
    WORK_DIR.mkdir(parents=True)
    prefix = f"dfs-bench-{secrets.token_hex(4)}:"
    video = make_small_video(WORK_DIR / "clip.mp4", seconds=1.0).read_bytes()
    with fresh_database() as database_url:
        env = platform_env(
            database_url=database_url,
            storage_url=(WORK_DIR / "storage").as_uri(),
            broker_key_prefix=prefix,
            work_dir=WORK_DIR / "work",
            # The routes are measured, not the limiter's refusals: polls now outrun the default
            # 300/s per tenant, so the buckets are raised (every request still goes through them).
            extra={
                "MAX_UPLOAD_BYTES": str(2 * GIB),
                "LOG_LEVEL": "WARNING",
                "RATE_LIMIT_PER_S": str(BENCH_RATE_LIMIT_PER_S),
                "RATE_LIMIT_BURST": str(BENCH_RATE_LIMIT_PER_S),
                # Hundreds of clients on one address, on purpose.
                "MAX_CONNECTIONS_PER_ADDRESS": "0",
            },
        )
        with get_session_factory(load_settings(database_url=database_url))() as session:
            key = create_api_key(session, tenant_name="bench").key
        api, base_url = start_api(env, log_dir=WORK_DIR / "logs")
        headers = {"Authorization": f"Bearer {key}"}
        try:
            image = (
                None if args.image_round_trips == 0 else _local_image_section(args, env, base_url, headers)
            )
            loads = _benchmark(
                base_url,
                headers,
                video,
                creates=args.creates,
                polls=args.polls,
                lists=args.lists,
                concurrency=args.concurrency,
                api_pid=api.pid,
            )
            waiting = (
                None
                if args.waiters == 0
                else _waiting_clients(
                    base_url,
                    headers,
                    video,
                    api_pid=api.pid,
                    settings=load_settings(database_url=database_url, broker_key_prefix=prefix),
                    waiters=args.waiters,
                    end_every_ms=args.end_every_ms,
                )
            )
            one_job = (
                None
                if args.waiters == 0
                else _waiters_on_one_job(
                    base_url,
                    headers,
                    video,
                    api_pid=api.pid,
                    settings=load_settings(database_url=database_url, broker_key_prefix=prefix),
                    waiters=args.waiters,
                )
            )
            upload = (
                None if args.skip_upload else _stream_upload(base_url, headers, api.pid, args.upload_bytes)
            )
        finally:
            api.stop()
            clear_broker_keys(prefix)
    shutil.rmtree(WORK_DIR / "storage", ignore_errors=True)
    return {
        "image_round_trips": image,
        "loads": loads,
        "waiting_clients": waiting,
        "waiters_on_one_job": one_job,
        "upload_1gib": upload,
        "api": "local: 1 uvicorn process, local-directory storage",
        "rate_limit_per_s": BENCH_RATE_LIMIT_PER_S,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default=None, help="base URL of a running API (default: start a local one)")
    parser.add_argument("--key", default=None, help="API key for --api")
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--polls", type=int, default=3000)
    parser.add_argument("--lists", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--upload-bytes", type=int, default=GIB)
    parser.add_argument("--skip-upload", action="store_true")
    parser.add_argument("--waiters", type=int, default=WAITERS, help="clients waiting at once (0: skip)")
    parser.add_argument("--end-every-ms", type=float, default=10.0, help="one waited job ends this often")
    parser.add_argument(
        "--image-round-trips",
        type=int,
        default=IMAGE_ROUND_TRIPS,
        help="photos sent one after another, each to its verdict with ?wait (0: skip; needs a worker "
        "on --api, the local run starts one)",
    )
    parser.add_argument(
        "--image-concurrency",
        type=int,
        default=1,
        help="above 1: the same number of round trips again, this many at once",
    )
    parser.add_argument(
        "--image-wait-s", type=int, default=30, help="?wait= of each round trip (at most WAIT_MAX_S)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if min(args.creates, args.polls, args.lists, args.waiters, args.image_round_trips) < 0:
        parser.error("counts cannot be negative")
    if args.image_concurrency < 1 or args.image_wait_s < 1:
        parser.error("--image-concurrency and --image-wait-s must be at least 1")

    machine_load = _machine_load()
    if args.api:
        if not args.key:
            parser.error("--api needs --key")
        from tests.utils.platform import make_small_video

        WORK_DIR.mkdir(parents=True, exist_ok=True)
        video = make_small_video(WORK_DIR / "clip.mp4", seconds=1.0).read_bytes()
        base_url, headers = args.api.rstrip("/"), {"Authorization": f"Bearer {args.key}"}
        image = (
            None
            if args.image_round_trips == 0
            else _image_section(
                base_url,
                headers,
                trips=args.image_round_trips,
                concurrency=args.image_concurrency,
                wait_s=args.image_wait_s,
                worker=f"the workers behind {args.api}",
            )
        )
        loads = _benchmark(
            base_url,
            headers,
            video,
            creates=args.creates,
            polls=args.polls,
            lists=args.lists,
            concurrency=args.concurrency,
        )
        result: dict[str, Any] = {
            "image_round_trips": image,
            "loads": loads,
            "upload_1gib": None,
            "api": args.api,
        }
    else:
        result = _local_run(args)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }
    result["client"] = "a second process: httpx, one keep-alive connection per thread"
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    machine_load["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    machine_load["bench_niceness"] = os.nice(0)
    # Latencies from a busy machine are not comparable with a quiet run's.
    machine_load["busy"] = machine_load["training_running"] or max(
        machine_load["load_average_1m"], machine_load["load_average_1m_end"]
    ) > (os.cpu_count() or 1)
    result["machine_load"] = machine_load
    _print_table(
        result["loads"],
        result["upload_1gib"],
        result.get("waiting_clients"),
        machine_load,
        result.get("waiters_on_one_job"),
        result.get("image_round_trips"),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    failed = any(load["server_errors"] for load in result["loads"]) or _image_failed(
        result.get("image_round_trips")
    )
    upload = result["upload_1gib"]
    return 1 if failed or (upload is not None and not upload["flat"]) else 0


if __name__ == "__main__":
    sys.exit(main())
