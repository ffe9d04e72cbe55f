"""The dependency audit fails loudly when it cannot complete, online (the advisory service is
unreachable) or offline (the snapshot is missing): an audit that checked nothing must never pass as
"no known vulnerabilities". The offline audit of this environment is part of the suite's run."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.utils.platform import REPO_ROOT, free_port

pytestmark = pytest.mark.integration


def test_audit_fails_when_the_advisory_service_is_unreachable() -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {
        key: value for key, value in os.environ.items() if key.lower() not in ("no_proxy", "https_proxy")
    }
    env.update({"HTTPS_PROXY": closed, "https_proxy": closed, "AUDIT_TIMEOUT_S": "300"})

    script = REPO_ROOT / "scripts" / "audit"
    result = subprocess.run(
        [str(script), "--online"], env=env, capture_output=True, text=True, timeout=360, check=False
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "[audit] FAILED" in result.stderr
    assert "passed" not in result.stderr.splitlines()[-1]


def test_offline_audit_fails_without_its_snapshot() -> None:
    env = {**os.environ, "AUDIT_SNAPSHOT": "/nonexistent/pypa-advisories.json"}
    script = REPO_ROOT / "scripts" / "audit"
    result = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "passed" not in (result.stdout + result.stderr)
