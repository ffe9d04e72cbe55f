"""Still images as one-frame inputs: probe with Pillow, plan the single frame, decode it to RGB.

An image goes through the same faces, crops, classifier and explanations as a video's frame;
only reading it differs. Before any pixel is decoded the header's size is checked against
``max_image_pixels`` (a small file that would inflate to gigabytes is refused unread),
``max_image_side`` and ``max_image_aspect_ratio``, and animations are refused. Decoding applies
the EXIF orientation and turns every colour mode the formats allow (CMYK, 16-bit, palette,
alpha) into 8-bit RGB; alpha is laid over white. ``pipeline.media_source`` sends images here.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.media import IMAGE_FORMATS
from pipeline.errors import AnimatedImageError, CorruptImageError, LimitExceededError, NotAVideoError
from pipeline.plan import check_sampling, decoded_size
from pipeline.types import AnalysisConfig, SegmentPlan, VideoInfo

__all__ = ["STILL_FORMAT_PREFIX", "StillDecoder", "decode_still", "is_still", "plan_still", "probe_image"]

# VideoInfo.format_name of an image read by Pillow ("image/jpeg", …): ffprobe's names never start so.
STILL_FORMAT_PREFIX = "image/"
# EXIF orientations that turn the picture a quarter: width and height swap once applied.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_BACKGROUND = (255, 255, 255, 255)  # what transparent pixels become
# Pixels converted at a time from 16 or 32 bits a pixel to 8: a few MB of float32 per band.
_CONVERT_BAND_PIXELS = 1 << 20


def is_still(info: VideoInfo) -> bool:
    """True for an image read by Pillow (a single-frame video is decoded by ffmpeg instead)."""
    return info.format_name.startswith(STILL_FORMAT_PREFIX)


@contextmanager
def _opened(path: Path, config: AnalysisConfig) -> Iterator[Image.Image]:
    """The image with its header read and checked, nothing decoded yet."""
    # Pillow refuses outright past twice its MAX_IMAGE_PIXELS: never below a cap set higher than
    # its own, so the refusal is always ours and names the limit the deployment set.
    if Image.MAX_IMAGE_PIXELS is not None and config.max_image_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = config.max_image_pixels
    try:
        with warnings.catch_warnings():
            # Our own pixel cap is the guard; Pillow's warning below its hard limit is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path, formats=[name.upper() for name in IMAGE_FORMATS])
    except Image.DecompressionBombError as exc:
        counted = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow read the header's size
        size = f" ({int(counted[1]) / 1e6:.1f} Mpixel)" if counted else ""
        raise LimitExceededError(
            f"{path.name}{size} is past the limit of {config.max_image_pixels / 1e6:.1f} Mpixel",
            code="image_too_large",
        ) from exc
    except UnidentifiedImageError as exc:
        raise CorruptImageError(f"{path.name}: the image header cannot be read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(f"{path.name}: the image cannot be read ({exc})") from exc
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise CorruptImageError(f"{path.name}: the image has no size")
        if width * height > config.max_image_pixels:
            raise LimitExceededError(
                f"{path.name} is {width}×{height} ({width * height / 1e6:.1f} Mpixel); the limit is "
                f"{config.max_image_pixels / 1e6:.1f} Mpixel",
                code="image_too_large",
            )
        long_side, short_side = max(width, height), min(width, height)
        if long_side > config.max_image_side:
            raise LimitExceededError(
                f"{path.name} is {width}×{height}; no side may be longer than {config.max_image_side} px",
                code="image_too_large",
            )
        if long_side > short_side * config.max_image_aspect_ratio:
            raise LimitExceededError(
                f"{path.name} is {width}×{height} ({long_side / short_side:.0f}:1); the long side may be "
                f"at most {config.max_image_aspect_ratio:g} times the short one",
                code="image_too_large",
            )
        try:
            # A phone's JPEG may carry more pictures after the photo (MPO: a preview, a depth
            # map); the first is the photo. More frames in the other formats are an animation.
            frames = 1 if image.format == "MPO" else int(getattr(image, "n_frames", 1))
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise CorruptImageError(f"{path.name}: the image cannot be read ({exc})") from exc
        if frames > 1:
            raise AnimatedImageError(
                f"{path.name} is an animated {image.format} of {frames} frames; send the animation "
                "as a video (MP4 or WebM) or a single frame as an image"
            )
        yield image


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except (OSError, SyntaxError, ValueError, TypeError):
        return 1  # a damaged EXIF block: the pixels are still fine, shown as stored


def probe_image(path: str | Path, config: AnalysisConfig | None = None) -> VideoInfo:
    """What the image is, once it is known to decode; its size as displayed (EXIF orientation
    applied). Raises CorruptImageError, LimitExceededError (``image_too_large``) or
    AnimatedImageError."""
    config = config or AnalysisConfig()
    path = Path(path)
    with _opened(path, config) as image:
        fmt = "jpeg" if image.format == "MPO" else str(image.format or "").lower()
        if fmt not in IMAGE_FORMATS:
            raise NotAVideoError(f"{path.name} is not a JPEG, PNG, WebP or GIF image")
        _load(path, image)
        width, height = image.size
        if _orientation(image) in _TRANSPOSING_ORIENTATIONS:
            width, height = height, width
    return VideoInfo(
        duration_s=0.0,
        fps=1.0,
        width=width,
        height=height,
        codec=fmt,
        nb_frames=1,
        format_name=STILL_FORMAT_PREFIX + fmt,
        size_bytes=path.stat().st_size,
        start_time_s=0.0,
        media_type="image",
    )


def plan_still(info: VideoInfo, config: AnalysisConfig | None = None) -> list[SegmentPlan]:
    """One segment holding the one frame."""
    check_sampling(config or AnalysisConfig())
    return [SegmentPlan(index=0, start_s=0.0, end_s=0.0, frame_times=(0.0,), frame_numbers=(0,))]


def _load(path: Path, image: Image.Image) -> None:
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImageError(f"{path.name} is truncated or damaged ({exc})") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode JPEG, PNG, WebP or GIF decode to."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        return _grey_to_8_bit(image).convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "L" and "transparency" in image.info:
        image = image.convert("LA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND)
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr


def _grey_to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit grey (and 32-bit integer or float grey) scaled to 8 bits, not clipped, a band of rows
    at a time: the picture is never copied whole into a wider type (float64 of a 50 Mpixel
    picture is 400 MB, where Pillow holds it in 100)."""
    width, height = image.size
    scale = np.float32(1.0 if image.mode == "F" else 257.0)
    grey = np.empty((height, width), dtype=np.uint8)
    rows = max(1, _CONVERT_BAND_PIXELS // width)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        band = np.asarray(image.crop((0, top, width, bottom)), dtype=np.float32)
        np.divide(band, scale, out=band)
        np.rint(band, out=band)
        np.clip(band, 0, 255, out=band)
        np.nan_to_num(band, copy=False)
        grey[top:bottom] = band
    return Image.fromarray(grey)


def decode_still(path: str | Path, info: VideoInfo, config: AnalysisConfig | None = None) -> np.ndarray:
    """The picture as displayed: H×W×3 uint8 RGB, scaled down to ``decode_long_side`` like video."""
    config = config or AnalysisConfig()
    path = Path(path)
    with _opened(path, config) as image:
        _load(path, image)
        try:
            upright = ImageOps.exif_transpose(image) or image
            rgb = to_rgb(upright)
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptImageError(f"{path.name}: the image cannot be converted to RGB ({exc})") from exc
        size = decoded_size(info, config)
        if rgb.size != size:
            rgb = rgb.resize(size, Image.Resampling.LANCZOS)
        return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


class StillDecoder:
    """``SegmentDecoder``'s interface for an image: one frame, decoded on entering the block."""

    def __init__(
        self, path: str | Path, info: VideoInfo, plan: SegmentPlan, config: AnalysisConfig | None = None
    ) -> None:
        self.path = Path(path)
        self.info = info
        self.plan = plan
        self.config = config or AnalysisConfig()
        self.frames = np.empty((0, 0, 0, 3), dtype=np.uint8)
        self.count = 0

    @property
    def times(self) -> list[float]:
        return list(self.plan.frame_times[: self.count])

    def __enter__(self) -> StillDecoder:
        if self.plan.frame_times:
            self.frames = decode_still(self.path, self.info, self.config)[None]
            self.count = 1
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None

    def chunks(self, size: int) -> Iterator[tuple[int, int]]:
        if self.count:
            yield 0, self.count
