"""The dependency audit fails loudly when it cannot ask the advisory service: an audit that checked
nothing must never pass as "no known vulnerabilities"."""

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
    result = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=360, check=False)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "[audit] FAILED" in result.stderr
    assert "passed" not in result.stderr.splitlines()[-1]
