#!/usr/bin/env python3
"""The sample job of ``./scripts/platform``: submits a generated face video, waits for the verdict
and prints it as JSON.

Every start of the platform runs this, so the sample is submitted with an ``Idempotency-Key``
derived from the video and the model: a restart with the same model finds the job an earlier start
made instead of adding another to the list, and a new checkpoint gets a sample of its own. A sample
that failed or was canceled is deleted and submitted again, so a restart after a fix shows the fix.

    python scripts/platform_sample.py BASE_URL API_KEY RUN_DIR    (MODEL_PATH names the checkpoint)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
ENDED = ("succeeded", "failed", "canceled")
SAMPLE_OPTIONS = {"sample_fps": "3", "segment_seconds": "3", "external_id": "sample"}


def log(message: str) -> None:
    print(f"[platform] {message}", file=sys.stderr)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sample_key(video: Path, model: Path | None) -> str:
    """The Idempotency-Key of the sample: the same for the same video and model."""
    parts = [file_sha256(video), file_sha256(model) if model is not None and model.is_file() else "no-model"]
    return "platform-sample-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def wait(what: str, predicate: Callable[[], T | None], timeout_s: float, run_dir: Path) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.5)
    sys.exit(f"[platform] gave up waiting for {what}; see {run_dir}/logs")


def submit(client: httpx.Client, video: Path, key: str) -> tuple[dict[str, Any], bool]:
    """The sample's job and whether an earlier start made it."""
    with open(video, "rb") as handle:
        created = client.post(
            "/v1/jobs",
            headers={"Idempotency-Key": key},
            files={"file": (video.name, handle, "video/mp4")},
            data=SAMPLE_OPTIONS,
            timeout=60,
        )
    if created.status_code != 202:
        sys.exit(f"[platform] submitting the sample failed: {created.status_code} {created.text}")
    return created.json(), created.headers.get("Idempotent-Replayed") == "true"


def main(argv: list[str]) -> int:
    base, api_key, run_dir = argv[0], argv[1], Path(argv[2])
    model = Path(os.environ["MODEL_PATH"]) if os.environ.get("MODEL_PATH") else None
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {api_key}"}, timeout=10)

    wait("the API", lambda: client.get("/healthz", timeout=2).status_code == 200, 60, run_dir)
    wait("the worker", lambda: client.get("/readyz", timeout=5).json()["status"] == "ready", 180, run_dir)

    video = run_dir / "sample-face.mp4"
    if not video.exists():
        from tests.utils.media import make_face_video

        make_face_video(video, seconds=6.0, width=640, height=360, fps=25, faces=1)
    key = sample_key(video, model)
    job, reused = submit(client, video, key)
    if reused and job["status"] in ("failed", "canceled"):
        log(f"the sample from an earlier start ({job['id']}) {job['status']}: submitting it again")
        deleted = client.delete(f"/v1/jobs/{job['id']}")
        if deleted.status_code != 204:
            sys.exit(f"[platform] deleting the old sample failed: {deleted.status_code} {deleted.text}")
        job, reused = submit(client, video, key)
    job_id = job["id"]
    if reused:
        log(f"the sample {video} is job {job_id}, from an earlier start with this model")
    else:
        log(f"submitted {video} as job {job_id}")

    def finished() -> dict[str, Any] | None:
        answer: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return answer if answer["status"] in ENDED else None

    job = wait(f"job {job_id}", finished, 600, run_dir)
    segments = client.get(f"/v1/jobs/{job_id}/segments").json()["items"]
    tracks = client.get(f"/v1/jobs/{job_id}/tracks").json()["items"]
    summary = {
        "job_id": job_id,
        "reused": reused,
        "status": job["status"],
        "verdict": job["verdict"],
        "score": job["score"],
        "model": job["model"],
        "error": job["error"],
        "segments": [
            {"index": s["index"], "start_s": s["start_s"], "end_s": s["end_s"], "score": s["score"]}
            for s in segments
        ],
        "tracks": tracks,
    }
    print(json.dumps(summary, indent=2))
    if job["model"] and job["model"].get("trained") is False:
        log("UNTRAINED MODEL: the verdict above comes from random weights")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
