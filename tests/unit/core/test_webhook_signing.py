"""Signatures verify with the reference ``standardwebhooks`` library; secrets round-trip encrypted;
the retry schedule and Retry-After parsing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError

from core.webhooks import (
    SecretError,
    decrypt_secret,
    encrypt_secret,
    message_id,
    new_secret,
    parse_retry_after,
    retry_delay_s,
    serialize_payload,
    sign,
)
from lifecycle.deliveries import EventType, job_payload

KEY = SecretStr("unit-test-webhook-secrets-key")


def _payload() -> bytes:
    return serialize_payload(
        job_payload(
            event=EventType.JOB_SUCCEEDED,
            job_id=uuid.UUID(int=7),
            status="succeeded",
            verdict="fake",
            score=0.875,
            external_id="clip-7",
            batch_id=None,
            error_code=None,
            at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        )
    )


def test_signature_verifies_with_the_reference_library() -> None:
    secret = new_secret()
    body = _payload()
    headers = sign(secret=secret, msg_id=message_id(uuid.UUID(int=1)), timestamp=datetime.now(UTC), body=body)

    parsed = Webhook(secret).verify(body, headers)

    assert headers["webhook-signature"].startswith("v1,")
    assert headers["webhook-id"] == "msg_" + "0" * 31 + "1"
    assert parsed == {
        "type": "job.succeeded",
        "timestamp": "2026-01-02T03:04:05Z",
        "data": {
            "job_id": str(uuid.UUID(int=7)),
            "status": "succeeded",
            "verdict": "fake",
            "verdict_label": "Signs of manipulation",
            "score": 0.875,
            "external_id": "clip-7",
            "batch_id": None,
        },
    }


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp", "secret"])
def test_signature_fails_when_anything_changes(tamper: str) -> None:
    secret = new_secret()
    body = _payload()
    now = datetime.now(UTC)
    headers = sign(secret=secret, msg_id="msg_a", timestamp=now, body=body)
    if tamper == "body":
        body = body.replace(b"0.875", b"0.125")
    elif tamper == "id":
        headers["webhook-id"] = "msg_b"
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(int((now - timedelta(seconds=30)).timestamp()))
    else:
        secret = new_secret()

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_old_timestamps_are_refused_by_receivers() -> None:
    secret = new_secret()
    body = _payload()
    headers = sign(
        secret=secret, msg_id="msg_a", timestamp=datetime.now(UTC) - timedelta(minutes=10), body=body
    )

    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, headers)


def test_payload_serialization_is_stable() -> None:
    payload = json.loads(_payload())

    assert serialize_payload(payload) == _payload()


def test_secrets_are_whsec_with_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()

    assert first.startswith("whsec_") and first != second
    assert len(Webhook(first)._whsecret) == 32


def test_secret_round_trips_encrypted() -> None:
    secret = new_secret()
    stored = encrypt_secret(secret, key=KEY, context="endpoint:1")

    assert secret not in stored and secret[6:] not in stored
    assert stored.startswith("v1:")
    assert decrypt_secret(stored, key=KEY, context="endpoint:1") == secret
    # A fresh nonce each time: the same secret never encrypts to the same text.
    assert encrypt_secret(secret, key=KEY, context="endpoint:1") != stored


@pytest.mark.parametrize(
    ("key", "context"),
    [(SecretStr("another-key-of-16-chars"), "endpoint:1"), (KEY, "endpoint:2")],
    ids=["wrong-key", "copied-to-another-row"],
)
def test_secret_does_not_decrypt_with_another_key_or_row(key: SecretStr, context: str) -> None:
    stored = encrypt_secret(new_secret(), key=KEY, context="endpoint:1")

    with pytest.raises(SecretError):
        decrypt_secret(stored, key=key, context=context)


def test_garbled_secret_is_a_secret_error() -> None:
    with pytest.raises(SecretError):
        decrypt_secret("v1:not-base64!!", key=KEY, context="x")
    with pytest.raises(SecretError):
        decrypt_secret("v9:abcd", key=KEY, context="x")


def test_retry_schedule_with_jitter() -> None:
    schedule = (5.0, 300.0, 1800.0)
    delays = [retry_delay_s(failed_attempts=2, schedule=schedule, jitter=0.2) for _ in range(200)]

    assert all(240.0 <= delay <= 360.0 for delay in delays if delay is not None)
    assert len({round(delay or 0, 3) for delay in delays}) > 100  # spread, not one value
    assert retry_delay_s(failed_attempts=1, schedule=schedule, jitter=0.0) == 5.0
    assert retry_delay_s(failed_attempts=3, schedule=schedule, jitter=0.0) == 1800.0
    assert retry_delay_s(failed_attempts=4, schedule=schedule, jitter=0.0) is None
    assert retry_delay_s(failed_attempts=0, schedule=schedule, jitter=0.0) is None


def test_retry_after_seconds_and_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 7 ", now=now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5", now=now) is None
    assert parse_retry_after(None) is None
