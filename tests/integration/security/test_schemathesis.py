"""Schemathesis against the OpenAPI document the API serves: every operation, generated valid and
invalid requests with an admin key (so admin routes are exercised too), a bounded number of
examples per operation. Zero 5xx answers, and no request that crashed the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.utils.platform import REPO_ROOT, server_error_lines
from tests.utils.stack import PrivateStack

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 20
MAX_TIME_S = 180
HOOKS = "tests.integration.security.schemathesis_hooks"


def test_no_generated_request_gets_a_5xx(security_stack: PrivateStack, tmp_path: Path) -> None:
    stack = security_stack
    admin = stack.new_key(admin=True)
    report = tmp_path / "schemathesis.json"
    log_offset = len(stack.api.log_text())
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{stack.base_url}/openapi.json",
        "--header", f"Authorization: {admin['Authorization']}",
        "--checks", "not_a_server_error",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--max-time", str(MAX_TIME_S),
        "--seed", "20240607",
        "--workers", "2",
        "--request-timeout", "60",
        "--suppress-health-check", "all",
        "--output-sanitize", "true",
        "--generation-allow-x00", "true",
        "--generation-database", "none",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    started = time.monotonic()
    env = {**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=MAX_TIME_S + 240, check=False, cwd=tmp_path, env=env
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr

    server_errors = server_error_lines(stack.api.log_text()[log_offset:])
    requests = stack.api.log_text()[log_offset:].count("api.request.completed")
    assert not server_errors, "\n".join(server_errors[:20])
    assert result.returncode == 0, output[-6000:]
    assert requests >= 500, f"only {requests} requests in {elapsed:.0f} s:\n{output[-3000:]}"
    assert report.exists(), output[-3000:]
    json.loads(report.read_text())  # a complete report was written
