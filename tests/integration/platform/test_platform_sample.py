"""scripts/platform_sample.py, the sample job of ``./scripts/platform``, against the real stack: a
second start finds the first start's job instead of adding another; a sample that was canceled is
submitted again; a new model gets a sample of its own."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.utils.platform import REPO_ROOT
from tests.utils.stack import Stack

pytestmark = pytest.mark.integration

SCRIPT = REPO_ROOT / "scripts" / "platform_sample.py"


def _start(stack: Stack, headers: dict[str, str], run_dir: Path, model: Path) -> dict[str, Any]:
    """One start's sample step, as ./scripts/platform runs it."""
    key = headers["Authorization"].split(" ", 1)[1]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MODEL_PATH": str(model)}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), stack.base_url, key, str(run_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _jobs(stack: Stack, headers: dict[str, str]) -> list[dict[str, Any]]:
    with stack.client(headers) as client:
        response = client.get("/v1/jobs", params={"limit": 100})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _run_dir(stack: Stack, tmp_path: Path) -> Path:
    """A run folder holding a short sample video, so the worker has little to do."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copyfile(
        stack.face_video(f"sample-{uuid.uuid4().hex[:6]}.mp4", seconds=2.0).path, run_dir / "sample-face.mp4"
    )
    return run_dir


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("platform_sample_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_start_reuses_the_sample_job(platform: Stack, tmp_path: Path) -> None:
    headers = platform.new_key()
    run_dir = _run_dir(platform, tmp_path)
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"checkpoint one")

    first = _start(platform, headers, run_dir, model)
    assert first["status"] == "succeeded" and first["reused"] is False, first
    second = _start(platform, headers, run_dir, model)
    assert second["job_id"] == first["job_id"] and second["reused"] is True, second
    assert second["status"] == "succeeded"
    assert [job["id"] for job in _jobs(platform, headers)] == [first["job_id"]]

    # A new checkpoint gets a sample of its own.
    model.write_bytes(b"checkpoint two")
    third = _start(platform, headers, run_dir, model)
    assert third["job_id"] != first["job_id"] and third["reused"] is False, third
    assert {job["id"] for job in _jobs(platform, headers)} == {first["job_id"], third["job_id"]}


def test_a_canceled_sample_is_submitted_again(platform: Stack, tmp_path: Path) -> None:
    headers = platform.new_key()
    run_dir = _run_dir(platform, tmp_path)
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"checkpoint")
    script = _script()
    key = script.sample_key(run_dir / "sample-face.mp4", model)
    # An earlier start whose sample was canceled before it ran.
    platform.pause_queue("probe")
    try:
        with platform.client(headers) as client:
            earlier, reused = script.submit(client, run_dir / "sample-face.mp4", key)
            assert reused is False
            assert client.post(f"/v1/jobs/{earlier['id']}/cancel").status_code == 200
    finally:
        platform.resume_queue("probe")

    again = _start(platform, headers, run_dir, model)
    assert again["job_id"] != earlier["id"] and again["reused"] is False, again
    assert again["status"] == "succeeded"
    assert [job["id"] for job in _jobs(platform, headers)] == [again["job_id"]]
