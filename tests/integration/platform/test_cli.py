"""The platform's commands as a user runs them: migrate a new database, create a key, and a worker
that refuses to start without a usable model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory

from core.migrate import alembic_config
from tests.utils.platform import REPO_ROOT, fresh_database
from tests.utils.stack import Stack

pytestmark = pytest.mark.integration


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_then_keys_create_on_a_new_database() -> None:
    with fresh_database(migrate=False) as url:
        env = {**os.environ, "DATABASE_URL": url}
        migrated = _cli("migrate", env=env)
        again = _cli("migrate", env=env)
        created = _cli("keys", "create", "--tenant", "cli", "--admin", env=env)
        listed = _cli("keys", "list", env=env)

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert migrated.returncode == 0, migrated.stderr
    assert f"revision {head}" in migrated.stdout
    assert again.returncode == 0
    key = created.stdout.strip()
    assert created.returncode == 0 and key.startswith("dfs_")
    assert "admin" in listed.stdout and key not in listed.stdout


def test_created_key_works_against_the_api(platform: Stack) -> None:
    created = _cli("keys", "create", "--tenant", "cli-api", env=platform.env)

    response = httpx.get(
        f"{platform.base_url}/v1/jobs", headers={"Authorization": f"Bearer {created.stdout.strip()}"}
    )

    assert response.status_code == 200 and response.json() == {"items": [], "next_cursor": None}


def test_worker_refuses_to_start_without_a_model(platform: Stack, tmp_path: Path) -> None:
    missing = _cli("worker", env={**platform.env, "MODEL_PATH": str(tmp_path / "none.safetensors")})
    foreign = tmp_path / "weights.safetensors"
    foreign.write_bytes(b"not a checkpoint at all")
    unreadable = _cli("worker", env={**platform.env, "MODEL_PATH": str(foreign)})

    assert missing.returncode == 9 and "model file not found" in missing.stderr
    assert unreadable.returncode == 9 and "safetensors" in unreadable.stderr


def test_bad_settings_stop_the_commands_with_a_clear_message(platform: Stack) -> None:
    result = _cli("serve", env={**platform.env, "STORAGE_URL": "ftp://nowhere"})

    assert result.returncode == 2
    assert "STORAGE_URL" in result.stderr
