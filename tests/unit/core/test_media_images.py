"""Still images told apart from videos by their first bytes, and animations seen in the header."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.media import SNIFF_BYTES, image_is_animated, media_type_for, sniff_image, sniff_media
from tests.utils.images import astronaut, encode, sixteen_bit_rgb_png


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return Image.fromarray(astronaut())


@pytest.mark.parametrize(
    ("fmt", "options", "expected"),
    [
        ("JPEG", {}, "jpeg"),
        ("PNG", {}, "png"),
        ("WEBP", {}, "webp"),
        ("WEBP", {"lossless": True}, "webp"),
        ("GIF", {}, "gif"),
    ],
    ids=["jpeg", "png", "webp-lossy", "webp-lossless", "gif"],
)
def test_real_images_are_sniffed(
    picture: Image.Image, fmt: str, options: dict[str, object], expected: str
) -> None:
    head = encode(picture, fmt, **options)[:SNIFF_BYTES]

    assert sniff_image(head) == sniff_media(head) == expected
    assert media_type_for(expected) == "image"
    assert not image_is_animated(head)


def test_videos_and_other_files_are_not_images() -> None:
    mp4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64
    assert sniff_image(mp4) is None and sniff_media(mp4) == "mp4" and media_type_for("mp4") == "video"
    assert media_type_for(None) == "video"
    for head in (b"", b"BM" + b"\x00" * 64, b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 8, b"GIF8"):
        assert sniff_media(head) is None, head


def test_a_sixteen_bit_png_is_a_png() -> None:
    assert sniff_image(sixteen_bit_rgb_png(np.zeros((4, 4, 3), np.uint8))) == "png"


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_animated_webp_and_apng_are_seen_in_the_header(picture: Image.Image, fmt: str) -> None:
    frames = [picture, picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    import io

    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    head = buffer.getvalue()[:SNIFF_BYTES]

    assert sniff_image(head) == fmt.lower()
    assert image_is_animated(head)
