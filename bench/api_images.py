"""The API benchmark's image round trip: a photo with a face uploaded with ``POST /v1/jobs?wait=``
until its verdict comes back, one after another and at a given concurrency."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.stats import percentile

__all__ = ["IMAGE_WARM_UP_TRIPS", "image_failed", "image_section"]

IMAGE_WARM_UP_TRIPS = 2  # the first images through a fresh worker pay for lazy imports and caches
IMAGE_TRIP_DEADLINE_S = 300.0  # a trip still unended by then counts as not ended
ENDED = frozenset({"succeeded", "failed", "canceled"})


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
    return round(percentile(values, q) * 1000, 1) if values else None


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


def image_section(
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


def image_failed(section: dict[str, Any] | None) -> bool:
    return section is not None and any(
        run["succeeded"] < run["trips"] or run["server_errors"] for run in section["runs"]
    )
