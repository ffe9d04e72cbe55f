"""Still images read by Pillow: every mode made 8-bit RGB as displayed, caps checked before decoding,
animations and damaged files refused with typed errors."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import errors
from pipeline.image import decode_still, is_still, plan_still, probe_image
from pipeline.types import AnalysisConfig
from tests.utils.images import astronaut, bomb_png, encode, flat_grey_png, rotated_jpeg, sixteen_bit_rgb_png


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return astronaut()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _read(path: Path, config: AnalysisConfig | None = None) -> np.ndarray:
    config = config or AnalysisConfig()
    return decode_still(path, probe_image(path, config), config)


def _error(decoded: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(decoded.astype(np.int32) - expected.astype(np.int32)).mean())


def test_exif_orientation_is_applied(tmp_path: Path, pixels: np.ndarray) -> None:
    path = _write(tmp_path, "turned.jpg", rotated_jpeg(pixels))
    assert Image.open(path).size == (512, 384)  # stored on its side

    info = probe_image(path)
    decoded = decode_still(path, info, AnalysisConfig())

    assert (info.width, info.height, info.media_type, info.codec) == (384, 512, "image", "jpeg")
    assert decoded.shape == (512, 384, 3) and decoded.dtype == np.uint8
    assert _error(decoded, pixels) < 6  # upright: the same picture, JPEG noise aside
    assert _error(decoded, np.rot90(np.rot90(pixels))) > 30  # not upside down


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("cmyk.jpg", lambda p: encode(Image.fromarray(p).convert("CMYK"), "JPEG", quality=95)),
        ("rgb48.png", sixteen_bit_rgb_png),
        ("rgb.webp", lambda p: encode(Image.fromarray(p), "WEBP", quality=95)),
        ("lossless.webp", lambda p: encode(Image.fromarray(p), "WEBP", lossless=True)),
        ("plain.png", lambda p: encode(Image.fromarray(p), "PNG")),
    ],
    ids=["cmyk-jpeg", "16-bit-rgb-png", "webp", "lossless-webp", "png"],
)
def test_colour_modes_become_rgb(tmp_path: Path, pixels: np.ndarray, name: str, make: object) -> None:
    path = _write(tmp_path, name, make(pixels))  # type: ignore[operator]

    decoded = _read(path)

    assert decoded.shape == pixels.shape and decoded.dtype == np.uint8
    assert _error(decoded, pixels) < 8


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    path = tmp_path / "grey16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")

    decoded = _read(path)

    assert decoded.shape == (64, 256, 3)
    assert decoded[0, 0].tolist() == [0, 0, 0] and decoded[0, -1].tolist() == [255, 255, 255]
    assert np.all(np.diff(decoded[0, :, 0].astype(int)) >= 0)  # still a ramp: no wrap-around at 255
    assert len(np.unique(decoded[0, :, 0])) > 200


def test_sixteen_bit_grey_is_converted_without_a_wide_copy(tmp_path: Path) -> None:
    # 97 KB on disk, 50 Mpixel of 16-bit grey: a float64 copy of it alone is 400 MB.
    path = flat_grey_png(tmp_path / "grey16.png", width=7070, height=7070, bit_depth=16)
    info = probe_image(path)

    tracemalloc.start()
    try:
        decoded = decode_still(path, info, AnalysisConfig())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert decoded.shape == (1920, 1920, 3) and not decoded.any()
    # numpy's arrays are traced: the 8-bit picture (50 MB) and a band, not a wide copy.
    assert peak < 80 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_palette_and_alpha_are_laid_over_white(tmp_path: Path, pixels: np.ndarray) -> None:
    rgba = np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])
    rgba[:100, :, 3] = 0  # the top band transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    palette = Image.fromarray(pixels).quantize(colors=64)
    palette.info["transparency"] = 0
    palette_path = tmp_path / "palette.png"
    palette.save(palette_path, transparency=0)
    gif_path = tmp_path / "still.gif"
    Image.fromarray(pixels).quantize(colors=128).save(gif_path)

    alpha = _read(path)
    indexed = _read(palette_path)
    gif = _read(gif_path)

    assert np.all(alpha[:100] == 255)  # transparent → white, not black
    assert _error(alpha[100:], pixels[100:]) == 0
    assert indexed.shape == gif.shape == pixels.shape
    assert _error(gif, pixels) < 12  # 128 colours of the original


def test_large_images_are_scaled_down_like_video_frames(tmp_path: Path, pixels: np.ndarray) -> None:
    path = _write(tmp_path, "big.png", encode(Image.fromarray(pixels).resize((768, 1024)), "PNG"))
    config = AnalysisConfig(decode_long_side=640)

    info = probe_image(path, config)
    decoded = decode_still(path, info, config)

    assert (info.width, info.height) == (768, 1024)  # boxes are reported in these pixels
    assert decoded.shape == (640, 480, 3)


def test_pixel_cap_refuses_before_decoding(tmp_path: Path, pixels: np.ndarray) -> None:
    path = _write(tmp_path, "photo.png", encode(Image.fromarray(pixels), "PNG"))

    with pytest.raises(errors.LimitExceededError) as caught:
        probe_image(path, AnalysisConfig(max_image_pixels=512 * 383))

    assert caught.value.code == "image_too_large" and "384×512" in caught.value.message


def test_decompression_bomb_is_refused_unread(tmp_path: Path) -> None:
    path = bomb_png(tmp_path / "bomb.png")
    assert path.stat().st_size < 100_000

    with pytest.raises(errors.LimitExceededError) as caught:
        probe_image(path)  # default cap: 50 Mpixel; the header says 3600

    assert caught.value.code == "image_too_large"
    assert caught.value.exit_code == 8
    # The limit named is the deployment's (MAX_IMAGE_PIXELS), not Pillow's own.
    assert "3600.0 Mpixel" in caught.value.message and "50.0 Mpixel" in caught.value.message
    assert "178956970" not in caught.value.message


def test_decompression_bomb_message_names_the_configured_cap(tmp_path: Path) -> None:
    path = bomb_png(tmp_path / "bomb.png")

    with pytest.raises(errors.LimitExceededError) as caught:
        probe_image(path, AnalysisConfig(max_image_pixels=1_000_000))

    assert "past the limit of 1.0 Mpixel" in caught.value.message


@pytest.mark.parametrize(
    ("width", "height", "said"),
    [
        (49_999_999, 1, "no side may be longer than 20000 px"),  # under the pixel cap: a line
        (1, 49_999_999, "no side may be longer than 20000 px"),
        (25_000, 1_600, "no side may be longer than 20000 px"),
        (10_000, 400, "(25:1); the long side may be at most 20 times the short one"),
        (100, 2_100, "(21:1)"),
    ],
)
def test_a_side_or_a_shape_past_the_caps_is_refused_before_decoding(
    tmp_path: Path, width: int, height: int, said: str
) -> None:
    path = flat_grey_png(tmp_path / "line.png", width=width, height=height)
    assert path.stat().st_size < 100_000 and width * height < AnalysisConfig().max_image_pixels

    with pytest.raises(errors.LimitExceededError) as caught:
        probe_image(path)

    assert caught.value.code == "image_too_large" and caught.value.exit_code == 8
    assert f"{width}×{height}" in caught.value.message and said in caught.value.message


def test_a_wide_picture_within_the_caps_is_read(tmp_path: Path) -> None:
    path = flat_grey_png(tmp_path / "panorama.png", width=4000, height=200)  # 20:1, the limit

    decoded = _read(path)

    assert decoded.shape == (96, 1920, 3)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animations_are_refused(tmp_path: Path, pixels: np.ndarray, fmt: str) -> None:
    frames = [Image.fromarray(pixels), Image.fromarray(255 - pixels)]
    path = tmp_path / f"animated.{fmt.lower()}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)

    with pytest.raises(errors.AnimatedImageError) as caught:
        probe_image(path)

    assert caught.value.code == "animated_image" and "2 frames" in caught.value.message


def test_truncated_image_is_corrupt(tmp_path: Path, pixels: np.ndarray) -> None:
    whole = encode(Image.fromarray(pixels), "PNG")
    path = _write(tmp_path, "cut.png", whole[: len(whole) // 2])

    with pytest.raises(errors.CorruptImageError) as caught:
        probe_image(path)

    assert caught.value.code == "corrupt_image" and isinstance(caught.value, errors.InputError)


def test_garbage_after_a_jpeg_signature_is_corrupt(tmp_path: Path) -> None:
    path = _write(tmp_path, "fake.jpg", b"\xff\xd8\xff" + b"not really a jpeg" * 40)

    with pytest.raises(errors.CorruptImageError):
        probe_image(path)


def test_an_image_is_one_segment_of_one_frame(tmp_path: Path, pixels: np.ndarray) -> None:
    path = _write(tmp_path, "photo.webp", encode(Image.fromarray(pixels), "WEBP"))
    info = probe_image(path)

    (plan,) = plan_still(info)

    assert is_still(info) and info.format_name == "image/webp"
    assert plan.frame_times == (0.0,) and plan.frame_numbers == (0,)


def test_a_phone_jpeg_with_a_second_picture_is_a_photo(tmp_path: Path, pixels: np.ndarray) -> None:
    # Cameras append a preview or depth map after the photo (MPO); it is not an animation.
    path = tmp_path / "camera.jpg"
    small = Image.fromarray(pixels).resize((96, 128))
    Image.fromarray(pixels).save(path, format="MPO", save_all=True, append_images=[small], quality=95)
    assert Image.open(path).format == "MPO" and getattr(Image.open(path), "n_frames", 1) == 2

    info = probe_image(path)
    decoded = decode_still(path, info, AnalysisConfig())

    assert (info.codec, info.format_name, info.width, info.height) == ("jpeg", "image/jpeg", 384, 512)
    assert _error(decoded, pixels) < 6  # the photo, not the preview
