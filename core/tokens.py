"""Signed tokens for links that carry their own authority (an event stream, a shared job).

A token is ``v1.<payload>.<signature>``: the payload is the claims as compact JSON in URL-safe
base64, the signature an HMAC-SHA256 of ``v1.<payload>`` under a key derived from the deployment's
secret (WEBHOOK_SECRETS_KEY) for one purpose, so a token made for one use never opens another.
Claims are signed, not encrypted: they must hold nothing the bearer may not see.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from core.config import Settings

__all__ = ["TOKEN_MAX_CHARS", "read_token", "sign_token"]

_VERSION = "v1"
TOKEN_MAX_CHARS = 1024  # what the service issues is about 100 to 200


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signing_key(settings: Settings, purpose: bytes) -> bytes:
    secret = settings.webhook_secrets_key.get_secret_value().encode("utf-8")
    return hmac.new(secret, purpose, hashlib.sha256).digest()


def _signature(settings: Settings, purpose: bytes, message: str) -> str:
    return _b64(hmac.new(_signing_key(settings, purpose), message.encode("ascii"), hashlib.sha256).digest())


def sign_token(settings: Settings, *, purpose: bytes, claims: dict[str, Any]) -> str:
    """The same claims and purpose always give the same token."""
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    message = f"{_VERSION}.{payload}"
    return f"{message}.{_signature(settings, purpose, message)}"


def read_token(settings: Settings, *, purpose: bytes, token: str) -> dict[str, Any] | None:
    """The claims of a token this deployment signed for ``purpose``; None for anything else
    (malformed, forged, signed for another purpose or under another secret). Expiry is the
    caller's to check: only it knows which claim holds it."""
    # Anything not short ASCII is refused before the signature, whose check expects ASCII.
    if len(token) > TOKEN_MAX_CHARS or not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _VERSION:
        return None
    message = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_signature(settings, purpose, message), parts[2]):
        return None
    try:
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None
