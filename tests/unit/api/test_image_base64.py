"""Inline images (``image_base64``): decoded, size-capped and sniffed, each refusal typed."""

from __future__ import annotations

import base64

import pytest
from PIL import Image

from api.services.images import decode_image_base64, json_body_limit
from core.config import Settings
from core.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from tests.utils.images import astronaut, encode


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(max_image_base64_bytes=64 * 1024)


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    data = encode(Image.fromarray(astronaut()).resize((192, 256)), "JPEG", quality=80)
    assert len(data) < 64 * 1024
    return data


def test_plain_wrapped_and_data_url_forms_decode(settings: Settings, jpeg: bytes) -> None:
    text = base64.b64encode(jpeg).decode()
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    urlsafe = base64.urlsafe_b64encode(jpeg).decode()

    for given in (text, wrapped, f"data:image/jpeg;base64,{text}", urlsafe):
        assert decode_image_base64(given, settings=settings) == (jpeg, "jpeg")


@pytest.mark.parametrize(
    "text", ["not base64 at all!", "abc", "////=///"], ids=["symbols", "padding", "inner-pad"]
)
def test_bad_base64_is_422(settings: Settings, text: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        decode_image_base64(text, settings=settings)

    assert caught.value.code == "invalid_base64" and caught.value.status_code == 422


def test_empty_is_422(settings: Settings) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        decode_image_base64("", settings=settings)

    assert caught.value.code == "empty_file"


def test_past_the_cap_is_413(settings: Settings) -> None:
    text = base64.b64encode(b"\xff\xd8\xff" + b"\x00" * (64 * 1024)).decode()

    with pytest.raises(PayloadTooLargeError) as caught:
        decode_image_base64(text, settings=settings)

    assert caught.value.code == "image_too_large" and caught.value.status_code == 413
    assert json_body_limit(settings) >= len(text)  # the JSON body itself is read, then refused


@pytest.mark.parametrize(
    "data",
    [b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 600, b"BM" + b"\x00" * 600, b"plain text " * 20],
    ids=["mp4", "bmp", "text"],
)
def test_not_an_image_is_415(settings: Settings, data: bytes) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as caught:
        decode_image_base64(base64.b64encode(data).decode(), settings=settings)

    assert caught.value.code == "unsupported_format" and caught.value.status_code == 415


def test_animated_webp_is_415(settings: Settings) -> None:
    import io

    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="WEBP", save_all=True, append_images=frames[1:], duration=50)

    with pytest.raises(UnsupportedMediaTypeError) as caught:
        decode_image_base64(base64.b64encode(buffer.getvalue()).decode(), settings=settings)

    assert caught.value.code == "animated_image"


def test_formats_left_out_of_allowed_containers_are_refused(jpeg: bytes) -> None:
    videos_only = Settings(allowed_containers=("mp4", "png"))

    with pytest.raises(UnsupportedMediaTypeError) as caught:
        decode_image_base64(base64.b64encode(jpeg).decode(), settings=videos_only)

    assert "png" in caught.value.message
