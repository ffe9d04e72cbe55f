"""Signed tokens: what one deployment signs for one purpose reads back there and nowhere else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import SecretStr

from core.config import Settings, load_settings
from core.tokens import TOKEN_MAX_CHARS, read_token, sign_token

SHARE = b"test purpose: share"
STREAM = b"test purpose: stream"


@pytest.fixture()
def settings() -> Settings:
    return load_settings(environment="test", webhook_secrets_key=SecretStr("unit-test-token-secret"))


def test_a_token_reads_back_its_claims_and_is_the_same_each_time(settings: Settings) -> None:
    claims = {"s": "7a0c", "e": 1_900_000_000}

    token = sign_token(settings, purpose=SHARE, claims=claims)

    assert token == sign_token(settings, purpose=SHARE, claims=claims)
    assert token.startswith("v1.") and token.count(".") == 2 and token.isascii()
    assert read_token(settings, purpose=SHARE, token=token) == claims


def test_a_token_opens_nothing_for_another_purpose_or_deployment(settings: Settings) -> None:
    token = sign_token(settings, purpose=SHARE, claims={"s": "1"})
    elsewhere = settings.model_copy(update={"webhook_secrets_key": SecretStr("another-deployment-secret")})

    assert read_token(settings, purpose=STREAM, token=token) is None
    assert read_token(elsewhere, purpose=SHARE, token=token) is None


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the signature
        lambda t: t.replace("v1.", "v1.e", 1),  # the payload
        lambda t: "v2" + t[2:],
        lambda t: t + ".x",
        lambda t: t.rsplit(".", 1)[0],
        lambda t: "",
        lambda t: t.replace("v1", "v\u00b9", 1),
        lambda t: t + "A" * TOKEN_MAX_CHARS,
    ],
)
def test_an_altered_token_is_refused(settings: Settings, change: Callable[[str], str]) -> None:
    token = sign_token(settings, purpose=SHARE, claims={"s": "1"})

    assert read_token(settings, purpose=SHARE, token=change(token)) is None


def test_claims_that_are_not_an_object_are_refused(settings: Settings) -> None:
    assert read_token(settings, purpose=SHARE, token=sign_token(settings, purpose=SHARE, claims={})) == {}
    # Signed, but not an object: only what sign_token makes is accepted.
    from core import tokens

    message = f"v1.{tokens._b64(b'[1, 2]')}"
    forged_list = f"{message}.{tokens._signature(settings, SHARE, message)}"
    assert read_token(settings, purpose=SHARE, token=forged_list) is None
