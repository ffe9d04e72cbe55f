"""Scaling benchmark: the same batch through 1, 2 and 3 worker processes; jobs per minute for each.
Not a test: it prints a table and writes JSON.

    .venv/bin/python bench/scaling.py                    # 24 jobs through 1, 2, 3 workers
    .venv/bin/python bench/scaling.py --jobs 60 --workers 1,2,4

Each run is a whole platform of its own (fresh PostgreSQL database, Redis under its own key
prefix, moto S3, one uvicorn API, N `deepfakestream worker` processes of one pool process each),
so runs do not share warm caches or queues. The batch is N copies of one generated face video
stored in S3 and submitted through `POST /v1/batches`; the clock runs from the submission to the
moment the batch has ended. The model is the shipped checkpoint when there is one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from core.config import load_settings  # noqa: E402
from core.db import get_session_factory  # noqa: E402
from core.keys import create_api_key  # noqa: E402
from pipeline.model import DEFAULT_MODEL_PATH  # noqa: E402
from tests.utils.media import make_face_video  # noqa: E402
from tests.utils.platform import (  # noqa: E402
    clear_broker_keys,
    create_bucket,
    fresh_database,
    make_test_checkpoint,
    moto_s3_server,
    platform_env,
    start_api,
    start_worker,
)
from tests.utils.waiting import wait_for  # noqa: E402

RESULTS = REPO / "bench" / "results" / "scaling.json"
WORK = REPO / "var" / "bench" / "scaling"
SOURCE_BUCKET = "scaling-sources"
STORAGE_BUCKET = "scaling-storage"


def _upload_sources(endpoint: str, video: Path, count: int, run: str) -> list[str]:
    import boto3

    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    sources = []
    for index in range(count):
        key = f"{run}/clip-{index:04d}.mp4"
        client.upload_file(str(video), SOURCE_BUCKET, key)
        sources.append(f"s3://{SOURCE_BUCKET}/{key}")
    return sources


def run_once(*, workers: int, jobs: int, video: Path, model: Path, sample_fps: float) -> dict[str, Any]:
    run = f"w{workers}-{secrets.token_hex(3)}"
    root = WORK / run
    log_dir = root / "logs"
    log_dir.mkdir(parents=True)
    prefix = f"dfs-bench-scaling-{run}:"
    with fresh_database() as database_url, moto_s3_server(log_dir) as endpoint:
        create_bucket(endpoint, STORAGE_BUCKET)
        create_bucket(endpoint, SOURCE_BUCKET)
        env = platform_env(
            database_url=database_url,
            storage_url=f"s3://{STORAGE_BUCKET}/bench",
            broker_key_prefix=prefix,
            work_dir=root / "work",
            s3_endpoint=endpoint,
            model_path=model,
            extra={
                "SOURCE_BUCKETS": SOURCE_BUCKET,
                "MAX_JOBS_IN_FLIGHT_PER_TENANT": str(max(jobs, 100)),
                "DEFAULT_SAMPLE_FPS": str(sample_fps),
                "RECONCILE_QUEUED_AFTER_S": "3600",
            },
        )
        settings = load_settings(database_url=database_url)
        with get_session_factory(settings)() as session:
            key = create_api_key(session, tenant_name="bench").key
        sources = _upload_sources(endpoint, video, jobs, run)
        started_workers = [
            start_worker(env, log_dir=log_dir, name=f"worker{i + 1}", beat=(i == 0),
                         queues="probe,analyze,maintenance")
            for i in range(workers)
        ]
        api = None
        try:
            api, base_url = start_api(env, log_dir=log_dir)
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"},
                              timeout=60) as client:
                began = time.monotonic()
                created = client.post("/v1/batches", json={
                    "name": f"scaling {workers}", "items": [{"source": s} for s in sources]})
                created.raise_for_status()
                batch_id = created.json()["id"]

                def ended() -> dict[str, Any] | None:
                    batch = client.get(f"/v1/batches/{batch_id}").json()
                    return batch if batch["status"] != "running" else None

                batch = wait_for(ended, timeout_s=3600, what=f"batch {batch_id}", interval_s=1.0)
                elapsed = time.monotonic() - began
            counts = batch["counts"]
        finally:
            if api is not None:
                api.stop()
            for worker in started_workers:
                worker.stop()
            clear_broker_keys(prefix)
    succeeded = int(counts.get("succeeded", 0))
    return {
        "workers": workers,
        "jobs": jobs,
        "succeeded": succeeded,
        "failed": int(counts.get("failed", 0)),
        "wall_s": round(elapsed, 2),
        "jobs_per_minute": round(60.0 * succeeded / elapsed, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--workers", default="1,2,3", help="comma-separated worker process counts")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the generated video")
    parser.add_argument("--size", default="640x360", help="WxH of the generated video")
    parser.add_argument("--sample-fps", type=float, default=3.0)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    WORK.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.lower().split("x"))
    video = make_face_video(WORK / f"face-{args.size}-{args.seconds}s.mp4", seconds=args.seconds,
                            width=width, height=height, fps=25, faces=1).path
    model = args.model or (DEFAULT_MODEL_PATH if DEFAULT_MODEL_PATH.exists()
                           else make_test_checkpoint(WORK / "random-224.safetensors", input_size=224))
    counts = [int(v) for v in args.workers.split(",")]
    rows = []
    for workers in counts:
        row = run_once(workers=workers, jobs=args.jobs, video=video, model=model, sample_fps=args.sample_fps)
        rows.append(row)
        print(f"{workers} worker(s): {row['jobs_per_minute']:.1f} jobs/min "
              f"({row['succeeded']}/{row['jobs']} in {row['wall_s']:.0f} s)", file=sys.stderr)

    base = rows[0]["jobs_per_minute"] / rows[0]["workers"] if rows and rows[0]["jobs_per_minute"] else 0.0
    for row in rows:
        row["speedup"] = round(row["jobs_per_minute"] / rows[0]["jobs_per_minute"], 3) if base else None
        row["efficiency"] = round(row["jobs_per_minute"] / (base * row["workers"]), 3) if base else None

    cores = os.cpu_count() or 1
    report = {
        "benchmark": "scaling",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu_count": cores, "platform": platform.platform(), "gpu": None},
        "video": {"seconds": args.seconds, "size": args.size, "fps": 25, "faces": 1},
        "sample_fps": args.sample_fps,
        "model": str(model.relative_to(REPO) if model.is_relative_to(REPO) else model),
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"\n{'workers':>7}  {'jobs/min':>9}  {'speedup':>7}  {'efficiency':>10}  {'wall s':>7}  ok/total")
    for row in rows:
        print(f"{row['workers']:>7}  {row['jobs_per_minute']:>9.1f}  {row['speedup'] or 0:>7.2f}  "
              f"{row['efficiency'] or 0:>10.2f}  {row['wall_s']:>7.0f}  {row['succeeded']}/{row['jobs']}")
    print(f"\n{cores} CPU cores; written to {args.out}")
    return 0 if all(row["succeeded"] == row["jobs"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
