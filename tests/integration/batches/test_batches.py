"""Batches through the real platform: 20 short videos from S3 and HTTPS with correct counts and a
signed batch.completed, an interactive job served before a 20-video backlog drains, cancel, the
CSV/JSONL export checked job by job, and the batch command."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from PIL import Image
from standardwebhooks import Webhook

from tests.integration.conftest import upload_sources
from tests.integration.platform.conftest import SOURCE_BUCKET
from tests.utils.images import astronaut, encode
from tests.utils.media import FaceVideo
from tests.utils.platform import REPO_ROOT
from tests.utils.receiver import Answer, Receiver
from tests.utils.stack import Stack
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.integration


def _submit_batch(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/batches", json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def _wait_batch(client: httpx.Client, batch_id: str, *, timeout_s: float = 300.0) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        batch = client.get(f"/v1/batches/{batch_id}").json()
        return batch if batch["status"] != "running" else None

    return dict(wait_for(ended, timeout_s=timeout_s, what=f"batch {batch_id} to end", interval_s=0.5))


def _results(client: httpx.Client, batch_id: str, fmt: str) -> httpx.Response:
    response = client.get(f"/v1/batches/{batch_id}/results", params={"format": fmt})
    assert response.status_code == 200, response.text
    return response


def test_batch_of_20_completes_with_counts_webhook_and_matching_exports(
    hooks_platform: Stack, receiver: Receiver, https_files: Receiver, short_clip: FaceVideo
) -> None:
    headers = hooks_platform.new_key()
    run = uuid.uuid4().hex[:8]
    s3_sources = upload_sources(
        hooks_platform, short_clip.path, [f"{run}/clip-{i:02d}.mp4" for i in range(17)]
    )
    https_source = https_files.serve_file(f"/{run}/clip-https.mp4", short_clip.path.read_bytes())
    sources = [
        *s3_sources,
        https_source,
        f"s3://{SOURCE_BUCKET}/{run}/missing.mp4",  # fails: not in the bucket
        https_files.base_url + f"/{run}/gone.mp4",  # fails: the server answers 404
    ]
    items = [{"source": source, "external_id": f"item-{index:02d}"} for index, source in enumerate(sources)]
    path = f"/cb/{uuid.uuid4().hex}"
    callback = receiver.script(path, [Answer(200)])
    with hooks_platform.client(headers) as client:
        secret = client.get("/v1/webhooks/callback-secret").json()["secret"]
        created = _submit_batch(client, {"items": items, "name": "backlog 20", "callback_url": callback})
        batch = _wait_batch(client, created["id"])
        jobs = {}
        exported = list(csv.DictReader(io.StringIO(_results(client, batch["id"], "csv").text)))
        for row in exported:
            jobs[row["job_id"]] = client.get(f"/v1/jobs/{row['job_id']}").json()
        lines = _results(client, batch["id"], "jsonl").text.splitlines()
        (request,) = receiver.wait_for(path, 1)

        # The receiver has the request before the worker records the attempt's outcome.
        def delivered() -> list[dict[str, Any]] | None:
            items = client.get(f"/v1/batches/{batch['id']}/deliveries").json()["items"]
            return items if items and all(d["status"] != "pending" for d in items) else None

        deliveries = wait_for(delivered, timeout_s=30, what="the batch.completed delivery to be recorded")

    assert created["status"] == "running" and created["jobs_total"] == 20
    assert created["counts"]["queued"] + created["counts"]["processing"] + created["jobs_finished"] == 20
    assert batch["status"] == "completed" and batch["name"] == "backlog 20"
    assert batch["jobs_finished"] == 20 and batch["progress"] == 1.0
    assert batch["counts"] == {"queued": 0, "processing": 0, "succeeded": 18, "failed": 2, "canceled": 0}
    assert sum(batch["verdicts"].values()) == 18
    assert batch["estimated_completion_at"] is None and batch["completed_at"] is not None
    # batch.completed, signed with the tenant's callback secret, carries the same counts.
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "batch.completed"
    assert payload["data"] == {
        "batch_id": batch["id"],
        "name": "backlog 20",
        "status": "completed",
        "jobs_total": 20,
        "counts": batch["counts"],
    }
    assert [d["event_type"] for d in deliveries] == ["batch.completed"]
    assert deliveries[0]["status"] == "succeeded"
    # The CSV export parses, lists the items in order, and matches every job.
    assert [int(row["index"]) for row in exported] == list(range(20))
    assert [row["external_id"] for row in exported] == [item["external_id"] for item in items]
    assert [row["source"] for row in exported] == sources
    for row in exported:
        job = jobs[row["job_id"]]
        assert job["batch_id"] == batch["id"] and job["external_id"] == row["external_id"]
        assert row["status"] == job["status"]
        assert row["verdict"] == (job["verdict"] or "")
        assert (float(row["score"]) if row["score"] else None) == job["score"]
        assert row["error_code"] == (job["error"]["code"] if job["error"] else "")
        assert row["model_version"] == (job["model_version"] or "")
    failed = {row["external_id"]: row["error_code"] for row in exported if row["status"] == "failed"}
    assert failed == {"item-18": "source_not_found", "item-19": "source_not_found"}
    https_job = jobs[exported[17]["job_id"]]
    assert https_job["status"] == "succeeded" and https_job["video"]["width"] == 320
    # JSONL carries the same rows.
    records = [json.loads(line) for line in lines]
    assert [r["job_id"] for r in records] == [row["job_id"] for row in exported]
    assert [r["score"] for r in records] == [jobs[row["job_id"]]["score"] for row in exported]
    assert all(r["index"] == index for index, r in enumerate(records))


def test_interactive_job_finishes_before_the_backlog_drains(
    hooks_platform: Stack, short_clip: FaceVideo
) -> None:
    headers = hooks_platform.new_key()
    run = uuid.uuid4().hex[:8]
    sources = upload_sources(
        hooks_platform, short_clip.path, [f"{run}/backlog-{i:02d}.mp4" for i in range(20)]
    )
    with hooks_platform.client(headers) as client:
        backlog = _submit_batch(client, {"items": [{"source": source} for source in sources]})
        # The backlog is under way when the interactive job arrives behind it.
        wait_for(
            lambda: client.get(f"/v1/batches/{backlog['id']}").json()["counts"]["queued"] < 20,
            timeout_s=60,
            what="the backlog to start",
        )
        interactive = hooks_platform.submit(headers, short_clip.path, external_id="interactive")
        done = hooks_platform.wait_job(headers, interactive["id"], timeout_s=120)
        at_that_moment = client.get(f"/v1/batches/{backlog['id']}").json()
        batch = _wait_batch(client, backlog["id"])
        finish_times = [
            row["finished_at"]
            for row in csv.DictReader(io.StringIO(_results(client, backlog["id"], "csv").text))
        ]

    assert done["status"] == "succeeded"
    assert batch["status"] == "completed" and batch["counts"]["succeeded"] == 20
    # One worker process, 20 videos ahead of it: the interactive job still went first, waiting at
    # most for the backlog task already running.
    assert at_that_moment["jobs_finished"] <= 5, at_that_moment
    finished_before = sum(1 for stamp in finish_times if stamp < done["finished_at"])
    assert finished_before <= 5, (finished_before, done["finished_at"], sorted(finish_times))


def test_cancel_batch_cancels_the_rest_and_sends_batch_completed(
    hooks_platform: Stack, receiver: Receiver, short_clip: FaceVideo
) -> None:
    headers = hooks_platform.new_key()
    run = uuid.uuid4().hex[:8]
    sources = upload_sources(hooks_platform, short_clip.path, [f"{run}/c-{i:02d}.mp4" for i in range(10)])
    batch_path = f"/cb/{uuid.uuid4().hex}"
    endpoint_path = f"/ep/{uuid.uuid4().hex}"
    callback = receiver.script(batch_path, [Answer(200)])
    endpoint_url = receiver.script(endpoint_path, [Answer(200)])
    with hooks_platform.client(headers) as client:
        endpoint = client.post(
            "/v1/webhooks", json={"url": endpoint_url, "event_types": ["job.canceled"]}
        ).json()
        batch = _submit_batch(client, {"items": [{"source": s} for s in sources], "callback_url": callback})
        canceled = client.post(f"/v1/batches/{batch['id']}/cancel")
        again = client.post(f"/v1/batches/{batch['id']}/cancel")
        final = _wait_batch(client, batch["id"], timeout_s=120)
        exported = list(csv.DictReader(io.StringIO(_results(client, batch["id"], "csv").text)))
    (request,) = receiver.wait_for(batch_path, 1)
    canceled_count = final["counts"]["canceled"]
    job_events = receiver.wait_for(endpoint_path, canceled_count)

    assert canceled.status_code == 200, canceled.text
    assert again.status_code == 200 and again.json()["status"] == final["status"]
    assert final["status"] == "canceled" and final["jobs_finished"] == 10
    assert canceled_count >= 1 and sum(final["counts"].values()) == 10
    assert final["counts"]["queued"] == final["counts"]["processing"] == 0
    payload = Webhook(client_secret(hooks_platform, headers)).verify(request.body, request.headers)
    assert payload["type"] == "batch.completed" and payload["data"]["status"] == "canceled"
    assert payload["data"]["counts"] == final["counts"]
    assert len(job_events) == canceled_count
    for event in job_events:
        data = Webhook(endpoint["secret"]).verify(event.body, event.headers)
        assert data["type"] == "job.canceled" and data["data"]["batch_id"] == batch["id"]
    rows_canceled = [row for row in exported if row["status"] == "canceled"]
    assert len(rows_canceled) == canceled_count
    assert all(row["error_code"] == "canceled" for row in rows_canceled)


def client_secret(platform: Stack, headers: dict[str, str]) -> str:
    with platform.client(headers) as client:
        return str(client.get("/v1/webhooks/callback-secret").json()["secret"])


def test_manifest_uploads_and_a_finished_batch_cannot_be_canceled(
    hooks_platform: Stack, short_clip: FaceVideo
) -> None:
    headers = hooks_platform.new_key()
    run = uuid.uuid4().hex[:8]
    sources = upload_sources(hooks_platform, short_clip.path, [f"{run}/m-{i}.mp4" for i in range(2)])
    manifest_csv = "source,external_id\r\n" + "".join(f"{s},csv-{i}\r\n" for i, s in enumerate(sources))
    manifest_jsonl = "\n".join(
        json.dumps({"source": s, "external_id": f"jl-{i}"}) for i, s in enumerate(sources)
    )
    with hooks_platform.client(headers) as client:
        from_csv = client.post(
            "/v1/batches",
            params={"name": "from csv"},
            content=manifest_csv,
            headers={"Content-Type": "text/csv"},
        )
        from_jsonl = client.post(
            "/v1/batches", content=manifest_jsonl, headers={"Content-Type": "application/x-ndjson"}
        )
        assert from_csv.status_code == 202, from_csv.text
        assert from_jsonl.status_code == 202, from_jsonl.text
        done = _wait_batch(client, from_csv.json()["id"])
        ids = [
            r["external_id"] for r in map(json.loads, _results(client, done["id"], "jsonl").text.splitlines())
        ]
        late = client.post(f"/v1/batches/{done['id']}/cancel")
        listed = client.get("/v1/batches").json()["items"]
        _wait_batch(client, from_jsonl.json()["id"])

    assert done["name"] == "from csv" and done["counts"]["succeeded"] == 2
    assert ids == ["csv-0", "csv-1"]
    assert late.status_code == 409 and late.json()["error"]["code"] == "batch_finished"
    assert [b["id"] for b in listed] == [from_jsonl.json()["id"], from_csv.json()["id"]]


@pytest.fixture(params=["s3", "local"])
def cli_platform(request: pytest.FixtureRequest) -> Stack:
    """The platform the batch command talks to, once per storage kind: S3 (local files go up
    through presigned URLs) and a local directory, ``./scripts/platform``'s default (they go up
    through the API's own upload route, with the key)."""
    name = "hooks_platform" if request.param == "s3" else "local_hooks_platform"
    return cast(Stack, request.getfixturevalue(name))


def _batch_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", "batch", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_batch_command_submits_follows_and_exports(
    cli_platform: Stack, short_clip: FaceVideo, tmp_path: Path
) -> None:
    headers = cli_platform.new_key()
    key = headers["Authorization"].split(" ", 1)[1]
    run = uuid.uuid4().hex[:8]
    sources = upload_sources(cli_platform, short_clip.path, [f"{run}/cli-{i}.mp4" for i in range(3)])
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("source,external_id\n" + "".join(f"{s},cli-{i}\n" for i, s in enumerate(sources)))
    broken = tmp_path / "broken.csv"
    broken.write_text("url,id\nhttps://example.com/a.mp4,a\n")
    env = {**cli_platform.env, "DEEPFAKESTREAM_API": cli_platform.base_url, "DEEPFAKESTREAM_API_KEY": key}
    output = tmp_path / "results.csv"

    submitted = _batch_cli(
        "submit", str(manifest), "--name", "from the command", "--poll-interval", "0.5", env=env
    )
    batch_id = submitted.stdout.strip()
    exported = _batch_cli("results", batch_id, "--format", "csv", "--output", str(output), env=env)
    streamed = _batch_cli("results", batch_id, "--format", "jsonl", env=env)
    refused = _batch_cli("submit", str(broken), env=env)
    unknown = _batch_cli("results", str(uuid.uuid4()), env=env)
    no_key = _batch_cli("status", batch_id, env={**env, "DEEPFAKESTREAM_API_KEY": ""})

    assert submitted.returncode == 0, submitted.stderr
    assert uuid.UUID(batch_id) and "analysed" in submitted.stderr  # the progress bar
    assert "completed: 3/3 ended (succeeded 3" in submitted.stderr
    assert "No signs of manipulation found by this model: " in submitted.stderr
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(output.open(newline="")))
    assert [row["external_id"] for row in rows] == ["cli-0", "cli-1", "cli-2"]
    assert all(row["status"] == "succeeded" for row in rows)
    assert [json.loads(line)["job_id"] for line in streamed.stdout.splitlines()] == [
        r["job_id"] for r in rows
    ]
    assert refused.returncode == 1 and "invalid_manifest" in refused.stderr
    assert unknown.returncode == 1 and "batch_not_found" in unknown.stderr
    assert no_key.returncode == 2 and "API key" in no_key.stderr


def test_batch_command_uploads_a_folder_and_says_how_many_failed(
    cli_platform: Stack, short_clip: FaceVideo, tmp_path: Path
) -> None:
    headers = cli_platform.new_key()
    key = headers["Authorization"].split(" ", 1)[1]
    folder = tmp_path / "newsroom"
    (folder / "day-2").mkdir(parents=True)
    (folder / "a.mp4").write_bytes(short_clip.path.read_bytes())
    (folder / "day-2" / "b.mov").write_bytes(short_clip.path.read_bytes())
    # Photos go in the same batch as the videos.
    (folder / "portrait.JPG").write_bytes(encode(Image.fromarray(astronaut()), "JPEG", quality=90))
    (folder / "day-2" / "still.png").write_bytes(encode(Image.fromarray(astronaut()), "PNG"))
    (folder / "notes.txt").write_text("neither a video nor a photo, and not picked up\n")
    (folder / "broken.mp4").write_text("a text file with a video's name\n" * 20)  # refused: 415
    env = {**cli_platform.env, "DEEPFAKESTREAM_API": cli_platform.base_url, "DEEPFAKESTREAM_API_KEY": key}

    submitted = _batch_cli("submit", str(folder), "--poll-interval", "0.5", env=env)

    assert submitted.returncode == 4, submitted.stderr
    assert "uploading" in submitted.stderr  # the upload's progress bar
    assert "1 other file left out" in submitted.stderr  # notes.txt, counted
    assert "upload failed: " in submitted.stderr and "broken.mp4: unsupported_format" in submitted.stderr
    assert submitted.stderr.rstrip().endswith("1 of 5 items failed")
    batch_id = submitted.stdout.strip()
    with cli_platform.client(headers) as client:
        batch = client.get(f"/v1/batches/{batch_id}").json()
        rows = list(csv.DictReader(io.StringIO(_results(client, batch_id, "csv").text)))
    assert batch["jobs_total"] == 4 and batch["counts"]["succeeded"] == 4, batch
    assert [(row["external_id"], row["filename"], row["source"], row["media_type"]) for row in rows] == [
        ("a.mp4", "a.mp4", "", "video"),
        ("day-2/b.mov", "b.mov", "", "video"),
        ("day-2/still.png", "still.png", "", "image"),
        ("portrait.JPG", "portrait.JPG", "", "image"),
    ]
    assert all(row["verdict_label"] for row in rows)


def test_batch_command_uploads_the_local_paths_of_a_csv(
    cli_platform: Stack, short_clip: FaceVideo, tmp_path: Path
) -> None:
    headers = cli_platform.new_key()
    key = headers["Authorization"].split(" ", 1)[1]
    run = uuid.uuid4().hex[:8]
    (remote,) = upload_sources(cli_platform, short_clip.path, [f"{run}/remote.mp4"])
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "local.mp4").write_bytes(short_clip.path.read_bytes())
    (tmp_path / "clips" / "face.webp").write_bytes(encode(Image.fromarray(astronaut()), "WEBP"))
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"source,external_id\nclips/local.mp4,here\n{remote},there\nclips/face.webp,photo\n")
    env = {**cli_platform.env, "DEEPFAKESTREAM_API": cli_platform.base_url, "DEEPFAKESTREAM_API_KEY": key}

    submitted = _batch_cli("submit", str(manifest), "--poll-interval", "0.5", env=env)

    assert submitted.returncode == 0, submitted.stderr
    with cli_platform.client(headers) as client:
        rows = list(csv.DictReader(io.StringIO(_results(client, submitted.stdout.strip(), "csv").text)))
    by_id = {row["external_id"]: row for row in rows}
    assert set(by_id) == {"here", "there", "photo"}
    assert by_id["here"]["filename"] == "local.mp4" and by_id["here"]["status"] == "succeeded"
    assert by_id["photo"]["filename"] == "face.webp" and by_id["photo"]["status"] == "succeeded"
    assert by_id["photo"]["media_type"] == "image"
    assert by_id["there"]["source"] == remote and by_id["there"]["status"] == "succeeded"


def test_batch_command_stops_at_the_first_refused_key(
    cli_platform: Stack, short_clip: FaceVideo, tmp_path: Path
) -> None:
    folder = tmp_path / "backlog"
    folder.mkdir()
    for index in range(3):
        (folder / f"clip-{index}.mp4").write_bytes(short_clip.path.read_bytes())
    wrong_key = f"dfs_{uuid.uuid4().hex[:8]}_{'x' * 43}"
    env = {
        **cli_platform.env,
        "DEEPFAKESTREAM_API": cli_platform.base_url,
        "DEEPFAKESTREAM_API_KEY": wrong_key,
    }

    submitted = _batch_cli("submit", str(folder), env=env)

    assert submitted.returncode == 1, submitted.stderr
    # One refusal, said once with what to check; not a failure per file.
    assert submitted.stderr.count("invalid_api_key") == 1, submitted.stderr
    assert "check --key or $DEEPFAKESTREAM_API_KEY" in submitted.stderr
    assert "upload failed" not in submitted.stderr and "items failed" not in submitted.stderr
    # The same address with a right key is served at once.
    with cli_platform.client(cli_platform.new_key()) as client:
        assert client.get("/v1/jobs").status_code == 200


def test_single_job_from_an_https_source(
    hooks_platform: Stack, https_files: Receiver, short_clip: FaceVideo
) -> None:
    headers = hooks_platform.new_key()
    run = uuid.uuid4().hex[:8]
    source = https_files.serve_file(f"/{run}/single%20clip.mp4", short_clip.path.read_bytes())
    with hooks_platform.client(headers) as client:
        created = client.post("/v1/jobs", json={"source": source, "external_id": "from-https"})
        gone = client.post("/v1/jobs", json={"source": https_files.base_url + f"/{run}/gone.mp4"})
    assert created.status_code == 202, created.text
    assert created.json()["video"]["source"] == source
    assert created.json()["video"]["filename"] == "single clip.mp4"

    job = hooks_platform.wait_job(headers, created.json()["id"])
    failed = hooks_platform.wait_job(headers, gone.json()["id"])

    assert job["status"] == "succeeded" and job["video"]["width"] == 320
    assert job["verdict_label"] is not None and job["explanation"]
    assert job["video"]["size_bytes"] == short_clip.path.stat().st_size
    # The worker hashed what it fetched, so the report names the input like an upload's.
    with hooks_platform.client(headers) as client:
        report = client.get(f"/v1/jobs/{job['id']}/report")
    assert report.status_code == 200
    assert hashlib.sha256(short_clip.path.read_bytes()).hexdigest() in report.text
    assert source in report.text
    assert failed["status"] == "failed" and failed["error"]["code"] == "source_not_found"
