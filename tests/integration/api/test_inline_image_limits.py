"""The documented cap on inline pictures (MAX_IMAGE_BASE64_BYTES, 10 MiB decoded) is the one a
client meets: POST /v1/jobs takes a JSON body large enough for it, and each refusal says which
limit it was."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from fastapi.testclient import TestClient
from PIL import Image

from core.config import Settings
from tests.utils.images import encode

Headers = Callable[..., dict[str, str]]


def _padded_jpeg(size: int) -> bytes:
    """A valid JPEG padded with zeros after its end to ``size`` bytes."""
    picture = encode(Image.new("RGB", (64, 64), "grey"), "JPEG")
    return picture + bytes(size - len(picture))


def _mime_base64(data: bytes) -> str:
    """base64 as a mail client writes it: a line break every 76 characters."""
    text = base64.b64encode(data).decode()
    return "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76))


def test_an_inline_picture_just_under_its_cap_is_accepted(
    client: TestClient, make_key: Headers, api_settings: Settings
) -> None:
    cap = api_settings.max_image_base64_bytes
    assert cap == 10 * 1024 * 1024 and api_settings.json_body_max_bytes == 1024 * 1024  # the defaults
    picture = _padded_jpeg(cap - 1024)
    headers = make_key()

    plain = client.post(
        "/v1/jobs", json={"image_base64": base64.b64encode(picture).decode()}, headers=headers
    )
    wrapped = client.post(
        "/v1/jobs", json={"image_base64": _mime_base64(picture), "external_id": "mime"}, headers=headers
    )

    assert plain.status_code == 202, plain.text[:300]
    assert wrapped.status_code == 202, wrapped.text[:300]
    assert plain.json()["media_type"] == wrapped.json()["media_type"] == "image"


def test_an_inline_picture_past_its_cap_names_that_cap(
    client: TestClient, make_key: Headers, api_settings: Settings
) -> None:
    cap = api_settings.max_image_base64_bytes
    text = base64.b64encode(_padded_jpeg(cap + 1024)).decode()

    response = client.post("/v1/jobs", json={"image_base64": text}, headers=make_key())

    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"]["code"] == "image_too_large"
    assert f"{cap} byte limit of inline images" in response.json()["error"]["message"]


def test_a_job_body_past_its_own_cap_says_what_it_allows(client: TestClient, make_key: Headers) -> None:
    body = json.dumps({"image_base64": "A" * (16 * 1024 * 1024)}).encode()

    response = client.post(
        "/v1/jobs", content=body, headers={**make_key(), "Content-Type": "application/json"}
    )

    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"]["code"] == "body_too_large"
    message = response.json()["error"]["message"]
    assert "JSON body of POST /v1/jobs" in message and "MAX_IMAGE_BASE64_BYTES" in message


def test_other_json_bodies_keep_the_small_cap(
    client: TestClient, make_key: Headers, api_settings: Settings
) -> None:
    body = json.dumps({"url": "https://hooks.example.com/x", "description": "x" * (2 * 1024 * 1024)})

    response = client.post(
        "/v1/webhooks", content=body, headers={**make_key(), "Content-Type": "application/json"}
    )

    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
    assert f"{api_settings.json_body_max_bytes} byte limit" in response.json()["error"]["message"]
