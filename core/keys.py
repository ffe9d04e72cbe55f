"""API keys: made with 256 random bits, shown once, stored as SHA-256 with a short public prefix."""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.models import ApiKey, Tenant

__all__ = [
    "KEY_PREFIX",
    "NewApiKey",
    "authenticate",
    "create_api_key",
    "ensure_saved_api_key",
    "get_or_create_tenant",
    "hash_api_key",
    "list_api_keys",
    "live_key",
    "revoke_api_key",
]

KEY_PREFIX = "dfs_"


@dataclass(frozen=True)
class NewApiKey:
    key: str  # the only time the plaintext exists
    record: ApiKey
    tenant: Tenant


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _generate() -> tuple[str, str]:
    public = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{public}_{secrets.token_urlsafe(32)}"
    return key, f"{KEY_PREFIX}{public}"


def get_or_create_tenant(session: Session, *, name: str) -> Tenant:
    name = name.strip()
    if not name or len(name) > 100:
        raise ValueError("a tenant name must have 1 to 100 characters")
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
    return tenant


def create_api_key(
    session: Session, *, tenant_name: str, admin: bool = False, label: str | None = None
) -> NewApiKey:
    """Creates the tenant when it does not exist yet. Commits."""
    tenant = get_or_create_tenant(session, name=tenant_name)
    key, prefix = _generate()
    record = ApiKey(
        tenant_id=tenant.id, prefix=prefix, key_hash=hash_api_key(key), is_admin=admin, label=label
    )
    session.add(record)
    session.commit()
    return NewApiKey(key=key, record=record, tenant=tenant)


def authenticate(session: Session, *, key: str) -> ApiKey | None:
    """The live key this plaintext belongs to (with its tenant), or None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    record = session.scalar(
        select(ApiKey)
        .join(Tenant)
        .where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None), Tenant.is_active.is_(True))
    )
    return record


def live_key(session: Session, *, key_id: uuid.UUID) -> ApiKey | None:
    """The key with this id while it is live (not revoked, its tenant active), or None."""
    record: ApiKey | None = session.scalar(
        select(ApiKey)
        .join(Tenant)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None), Tenant.is_active.is_(True))
    )
    return record


def ensure_saved_api_key(
    session: Session, *, tenant_name: str, path: Path, label: str | None = None
) -> tuple[str, bool]:
    """The key saved at ``path`` while it is live and the tenant's; else a new one, saved there
    (readable by its owner only). Returns (key, created): a development setup that starts many
    times keeps one key instead of piling up live ones."""
    saved = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
    if saved:
        record = authenticate(session, key=saved)
        if record is not None and record.tenant.name == tenant_name:
            return saved, False
    created = create_api_key(session, tenant_name=tenant_name, label=label)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(created.key + "\n")
    os.chmod(path, 0o600)  # an older file keeps its mode through O_TRUNC
    return created.key, True


def list_api_keys(session: Session, *, tenant_name: str | None = None) -> list[tuple[ApiKey, Tenant]]:
    query = select(ApiKey, Tenant).join(Tenant).order_by(Tenant.name, ApiKey.created_at)
    if tenant_name is not None:
        query = query.where(Tenant.name == tenant_name)
    return [(row[0], row[1]) for row in session.execute(query)]


def revoke_api_key(session: Session, *, prefix: str) -> bool:
    """Commits. False when no live key has this prefix."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]
