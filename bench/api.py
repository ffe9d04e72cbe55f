"""API benchmark: job creation, polling and listing throughput with p50/p99 latency, measured from a
second process, and the API's memory while a 1 GiB upload streams through it (it must stay flat).
Not a test: it prints a table and writes JSON.

    .venv/bin/python bench/api.py                       # starts a local API → bench/results/api.json
    .venv/bin/python bench/api.py --api URL --key KEY   # a running API (no memory figure)

The local run uses this machine's PostgreSQL (a fresh database) and Redis (a key prefix of its
own), a local storage directory, and one uvicorn process. No worker runs: jobs stay queued, so
the figures are the API's own cost, not analysis time.
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
FLAT_LIMIT_MB = 64.0  # RSS growth allowed while 1 GiB streams through (one storage part is 8 MiB)


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
) -> dict[str, Any]:
    """``requests`` calls over ``concurrency`` threads, each with its own keep-alive connection."""
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

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - started
    return {
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

    _run_load("warm-up", 20, 2, create, base_url, headers)
    return [
        _run_load("create job (multipart, 3 KB video)", creates, concurrency, create, base_url, headers),
        _run_load("poll job (GET /v1/jobs/{id})", polls, concurrency, poll, base_url, headers),
        _run_load("list jobs (GET /v1/jobs?limit=50)", lists, concurrency, page, base_url, headers),
    ]


def _print_table(loads: list[dict[str, Any]], upload: dict[str, Any] | None) -> None:
    print(f"{'operation':40} {'req':>6} {'conc':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'5xx':>4}")
    for load in loads:
        print(
            f"{load['name']:40} {load['requests']:>6} {load['concurrency']:>5} {load['throughput_rps']:>8} "
            f"{load['p50_ms']:>8} {load['p99_ms']:>8} {load['server_errors']:>4}"
        )
    if upload is not None:
        print(
            f"\n1 GiB streamed upload: {upload['seconds']} s ({upload['mb_per_s']} MB/s); API RSS "
            f"{upload['rss_baseline_mb']} → peak {upload['rss_peak_mb']} MB "
            f"(growth {upload['rss_growth_mb']} MB, "
            f"{'flat' if upload['flat'] else 'NOT flat'})"
        )


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
            extra={"MAX_UPLOAD_BYTES": str(2 * GIB), "LOG_LEVEL": "WARNING"},
        )
        with get_session_factory(load_settings(database_url=database_url))() as session:
            key = create_api_key(session, tenant_name="bench").key
        api, base_url = start_api(env, log_dir=WORK_DIR / "logs")
        headers = {"Authorization": f"Bearer {key}"}
        try:
            loads = _benchmark(
                base_url,
                headers,
                video,
                creates=args.creates,
                polls=args.polls,
                lists=args.lists,
                concurrency=args.concurrency,
            )
            upload = (
                None if args.skip_upload else _stream_upload(base_url, headers, api.pid, args.upload_bytes)
            )
        finally:
            api.stop()
            clear_broker_keys(prefix)
    shutil.rmtree(WORK_DIR / "storage", ignore_errors=True)
    return {"loads": loads, "upload_1gib": upload, "api": "local: 1 uvicorn process, local-directory storage"}


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
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    if args.api:
        if not args.key:
            parser.error("--api needs --key")
        from tests.utils.platform import make_small_video

        WORK_DIR.mkdir(parents=True, exist_ok=True)
        video = make_small_video(WORK_DIR / "clip.mp4", seconds=1.0).read_bytes()
        loads = _benchmark(
            args.api.rstrip("/"),
            {"Authorization": f"Bearer {args.key}"},
            video,
            creates=args.creates,
            polls=args.polls,
            lists=args.lists,
            concurrency=args.concurrency,
        )
        result: dict[str, Any] = {"loads": loads, "upload_1gib": None, "api": args.api}
    else:
        result = _local_run(args)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }
    result["client"] = "a second process: httpx, one keep-alive connection per thread"
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _print_table(result["loads"], result["upload_1gib"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    failed = any(load["server_errors"] for load in result["loads"])
    upload = result["upload_1gib"]
    return 1 if failed or (upload is not None and not upload["flat"]) else 0


if __name__ == "__main__":
    sys.exit(main())
