"""?wait= and the event stream against a real worker: the worker's commits are what wake the API."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.utils.media import FaceVideo
from tests.utils.stack import TERMINAL, Stack
from tests.utils.waiting import wait_for


def _read_events(response: httpx.Response) -> list[dict[str, Any]]:
    """The stream's events until it closes, each with the time it arrived."""
    events: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    for line in response.iter_lines():
        if line == "":
            if "event" in fields:
                fields["arrived"] = time.time()
                events.append(fields)
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return events


def test_event_stream_follows_a_real_job_to_its_end(platform: Stack, two_segment_video: FaceVideo) -> None:
    headers = platform.new_key()
    # Segments wait until the stream is open, so that their progress is heard live.
    platform.pause_queue("analyze")
    try:
        job = platform.submit(headers, two_segment_video.path, segment_seconds="1.5")
        wait_for(
            lambda: platform.job(headers, job["id"])["progress"]["segments_total"] == 2,
            timeout_s=120,
            what="the probe to plan two segments",
        )
        with (
            platform.client(headers, timeout_s=180) as client,
            client.stream("GET", f"/v1/jobs/{job['id']}/events") as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            platform.resume_queue("analyze")
            events = _read_events(response)
    finally:
        platform.resume_queue("analyze")

    kinds = [event["event"] for event in events]
    assert kinds[0] == "status" and kinds[-1] == "end", kinds
    first = json.loads(events[0]["data"])
    assert first["status"] == "processing" and first["progress"]["segments_done"] == 0
    progress = [json.loads(event["data"]) for event in events if event["event"] == "progress"]
    assert [item["progress"]["segments_done"] for item in progress] == [1, 2]
    assert sorted(item["segment"] for item in progress) == [0, 1]
    end = json.loads(events[-1]["data"])
    assert end["status"] == "succeeded" and end["verdict"] in ("fake", "real", "no_face")
    assert end == platform.job(headers, job["id"])
    # The end arrived as the job ended, not at a heartbeat.
    finished = datetime.fromisoformat(end["finished_at"]).astimezone(UTC).timestamp()
    assert events[-1]["arrived"] - finished < 3.0


def test_post_and_get_wait_answer_when_the_worker_ends_the_job(
    platform: Stack, two_segment_video: FaceVideo
) -> None:
    headers = platform.new_key()
    with platform.client(headers, timeout_s=60) as client:
        response = client.post(
            "/v1/jobs",
            params={"wait": "30"},
            files={"file": ("clip.mp4", two_segment_video.path.read_bytes(), "video/mp4")},
        )
        assert response.status_code == 202, response.text
        job = response.json()
        answered = time.time()
        for _ in range(6):
            if job["status"] in TERMINAL:
                break
            response = client.get(f"/v1/jobs/{job['id']}", params={"wait": "30"})
            assert response.status_code == 200
            job = response.json()
            answered = time.time()

    assert job["status"] == "succeeded", job
    finished = datetime.fromisoformat(job["finished_at"]).astimezone(UTC).timestamp()
    assert answered - finished < 3.0, "the waiting request answered long after the job ended"
