"""Webhook signing and secrets: the signed bytes and headers, secrets at rest, the retry clock.

Plumbing for the deliveries that ``lifecycle.deliveries`` writes and ``worker.webhooks`` sends
through ``core.egress``. Signatures come from the ``standardwebhooks`` package: ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``
with a ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import random
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from core.models import CallbackSecret

__all__ = [
    "SecretError",
    "decrypt_secret",
    "encrypt_secret",
    "ensure_callback_secret",
    "message_id",
    "new_secret",
    "parse_retry_after",
    "retry_delay_s",
    "secret_hint",
    "serialize_payload",
    "sign",
]


class SecretError(Exception):
    """A stored secret cannot be decrypted with this WEBHOOK_SECRETS_KEY."""


_SECRET_PREFIX = "whsec_"
_CIPHER_VERSION = "v1"


def new_secret() -> str:
    """A ``whsec_`` secret: 32 random bytes, base64 (what Standard Webhooks receivers expect)."""
    return _SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_hint(secret: str) -> str:
    return secret[: len(_SECRET_PREFIX) + 4]


def _cipher(key: SecretStr) -> AESGCM:
    # The setting is a passphrase of any length; AES-256 needs exactly 32 bytes.
    return AESGCM(hashlib.sha256(key.get_secret_value().encode()).digest())


def encrypt_secret(secret: str, *, key: SecretStr, context: str) -> str:
    """``context`` (the owning row's id) is authenticated, so a ciphertext copied onto another row
    does not decrypt there."""
    nonce = secrets.token_bytes(12)
    sealed = _cipher(key).encrypt(nonce, secret.encode(), context.encode())
    return f"{_CIPHER_VERSION}:{base64.b64encode(nonce + sealed).decode()}"


def decrypt_secret(stored: str, *, key: SecretStr, context: str) -> str:
    version, _, encoded = stored.partition(":")
    if version != _CIPHER_VERSION or not encoded:
        raise SecretError("the stored secret has an unknown format")
    try:
        raw = base64.b64decode(encoded)
        return _cipher(key).decrypt(raw[:12], raw[12:], context.encode()).decode()
    except (InvalidTag, ValueError) as exc:
        raise SecretError("the stored secret does not decrypt with WEBHOOK_SECRETS_KEY") from exc


def message_id(delivery_id: uuid.UUID) -> str:
    return f"msg_{delivery_id.hex}"


def serialize_payload(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed (compact; stored payloads are re-serialized the same way)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def sign(*, secret: str, msg_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


def ensure_callback_secret(session: Session, *, tenant_id: uuid.UUID, key: SecretStr) -> str:
    """The tenant's callback signing secret, made on first use (safe against a concurrent maker).
    Does not commit."""
    stored = session.get(CallbackSecret, tenant_id, populate_existing=True)
    if stored is None:
        secret = new_secret()
        session.execute(
            insert(CallbackSecret)
            .values(
                tenant_id=tenant_id,
                secret_encrypted=encrypt_secret(secret, key=key, context=f"callback:{tenant_id}"),
                secret_hint=secret_hint(secret),
            )
            .on_conflict_do_nothing(index_elements=["tenant_id"])
        )
        stored = session.get(CallbackSecret, tenant_id, populate_existing=True)
        assert stored is not None
    return decrypt_secret(stored.secret_encrypted, key=key, context=f"callback:{tenant_id}")


def retry_delay_s(*, failed_attempts: int, schedule: Sequence[float], jitter: float) -> float | None:
    """Seconds before the next attempt after ``failed_attempts`` failures in a row; None when the
    schedule is spent. Jitter spreads the retries of many deliveries that failed together."""
    if failed_attempts < 1 or failed_attempts > len(schedule):
        return None
    base = float(schedule[failed_attempts - 1])
    return max(0.0, base * random.uniform(1.0 - jitter, 1.0 + jitter))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())
