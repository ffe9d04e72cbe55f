"""API keys against a real database: shown once, stored hashed, revocable, tenant-scoped."""

from __future__ import annotations

import argparse
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import load_settings
from core.db import get_session_factory
from core.keys import (
    authenticate,
    create_api_key,
    ensure_saved_api_key,
    hash_api_key,
    list_api_keys,
    revoke_api_key,
)
from core.models import ApiKey
from tests.utils.platform import fresh_database


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture()
def session(database_url: str) -> Iterator[Session]:
    with get_session_factory(load_settings(database_url=database_url))() as session:
        yield session


def test_key_is_stored_only_as_hash(session: Session) -> None:
    created = create_api_key(session, tenant_name="acme", label="ci")

    stored = session.scalars(select(ApiKey.key_hash)).all()
    assert created.key.startswith(created.record.prefix + "_")
    assert created.key not in stored
    assert hash_api_key(created.key) in stored
    assert len(created.key) > 40


def test_authenticate_and_revoke(session: Session) -> None:
    created = create_api_key(session, tenant_name="globex", admin=True)

    found = authenticate(session, key=created.key)
    assert found is not None and found.is_admin and found.tenant_id == created.tenant.id
    assert authenticate(session, key=created.key[:-1] + "x") is None
    assert authenticate(session, key="not-even-prefixed") is None

    assert revoke_api_key(session, prefix=created.record.prefix)
    assert not revoke_api_key(session, prefix=created.record.prefix)
    assert authenticate(session, key=created.key) is None


def test_second_key_joins_existing_tenant(session: Session) -> None:
    first = create_api_key(session, tenant_name="initech")
    second = create_api_key(session, tenant_name="initech")

    assert first.tenant.id == second.tenant.id
    assert len(list_api_keys(session, tenant_name="initech")) == 2


def test_keys_cli_creates_key_printed_once(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core import cli_keys
    from core.config import get_settings

    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        code = cli_keys.run(
            argparse.Namespace(keys_action="create", tenant="cli-tenant", admin=False, label=None)
        )
        printed = capsys.readouterr()
        listed = cli_keys.run(argparse.Namespace(keys_action="list", tenant="cli-tenant"))
        listing = capsys.readouterr().out
    finally:
        get_settings.cache_clear()

    key = printed.out.strip()
    assert code == 0 and listed == 0
    assert key.startswith("dfs_") and "shown once" in printed.err
    assert key not in listing and key.split("_")[1] in listing


def test_ensured_key_is_reused_while_live(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "platform" / "demo-key"

    first, created = ensure_saved_api_key(session, tenant_name="demo-reuse", path=path, label="platform")
    assert created and path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = ensure_saved_api_key(session, tenant_name="demo-reuse", path=path)
    assert (again, created_again) == (first, False)
    live = [key for key, tenant in list_api_keys(session, tenant_name="demo-reuse") if key.revoked_at is None]
    assert len(live) == 1

    # A revoked key, or another tenant's, is replaced (and the file rewritten).
    assert revoke_api_key(session, prefix="_".join(first.split("_", 2)[:2]))
    replaced, created_new = ensure_saved_api_key(session, tenant_name="demo-reuse", path=path)
    assert created_new and replaced != first and path.read_text().strip() == replaced
    other, created_other = ensure_saved_api_key(session, tenant_name="someone-else", path=path)
    assert created_other and other != replaced


def test_keys_cli_ensure_prints_the_same_key_on_every_start(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core import cli_keys
    from core.config import get_settings

    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    ensure = argparse.Namespace(
        keys_action="ensure", tenant="platform-demo", file=tmp_path / "demo-key", label="scripts/platform"
    )
    try:
        first = cli_keys.run(ensure)
        created = capsys.readouterr()
        second = cli_keys.run(ensure)
        reused = capsys.readouterr()
    finally:
        get_settings.cache_clear()

    assert first == second == 0
    assert created.out == reused.out and created.out.startswith("dfs_")
    assert "created a key" in created.err and reused.err == ""
