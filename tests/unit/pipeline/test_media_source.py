"""The media source is chosen once: images go to Pillow, everything else to ffprobe, bad files are
refused with the same typed errors as before, and a stored probe finds the same source again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import errors
from pipeline.media_source import ImageSource, VideoSource, media_source_for, open_media_source, source_kind
from pipeline.types import AnalysisConfig, VideoInfo
from tests.utils.images import encode

# The first bytes of an MP4 (an ftyp box): enough for the choice, which reads nothing further.
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2mp41" + b"\x00" * 64


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "fmt"), [("a.jpg", "JPEG"), ("a.png", "PNG"), ("a.webp", "WEBP"), ("a.gif", "GIF")]
)
def test_an_image_is_read_by_the_image_source(tmp_path: Path, name: str, fmt: str) -> None:
    pixels = np.full((48, 64, 3), 120, dtype=np.uint8)
    path = _write(tmp_path, name, encode(Image.fromarray(pixels), fmt))

    source = open_media_source(path)

    assert isinstance(source, ImageSource)
    assert source.info.media_type == "image" and (source.info.width, source.info.height) == (64, 48)
    (plan,) = source.plan(AnalysisConfig())
    times, frames = source.decode(plan)
    assert times == [0.0] and frames.shape == (1, 48, 64, 3)


def test_an_image_with_a_video_name_is_still_an_image(tmp_path: Path) -> None:
    path = _write(tmp_path, "photo.mp4", encode(Image.new("RGB", (32, 32)), "PNG"))
    assert source_kind(path) is ImageSource


def test_anything_else_is_read_by_the_video_source(tmp_path: Path) -> None:
    assert source_kind(_write(tmp_path, "clip.mp4", MP4_HEAD)) is VideoSource
    assert source_kind(_write(tmp_path, "notes.txt", b"just some text\n")) is VideoSource


def test_bad_files_are_refused_with_their_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(errors.SourceNotFoundError):
        open_media_source(tmp_path / "nothing.mp4")
    with pytest.raises(errors.NotAVideoError, match="directory"):
        open_media_source(tmp_path)
    with pytest.raises(errors.EmptyFileError):
        open_media_source(_write(tmp_path, "empty.jpg", b""))
    with pytest.raises(errors.NotAVideoError):
        open_media_source(_write(tmp_path, "notes.mp4", b"just some text\n" * 100))
    with pytest.raises(errors.CorruptImageError):
        open_media_source(_write(tmp_path, "cut.png", encode(Image.new("RGB", (64, 64)), "PNG")[:40]))


def test_a_stored_probe_finds_the_same_source(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.png", encode(Image.new("RGB", (16, 16)), "PNG"))
    image = open_media_source(path)
    assert media_source_for(path, image.info) == image

    video = VideoInfo(duration_s=2.0, fps=25.0, width=320, height=240, codec="h264", format_name="mov,mp4")
    assert isinstance(media_source_for(tmp_path / "clip.mp4", video), VideoSource)
    # A video of one frame is analysed as an image, and still decoded by ffmpeg.
    single = VideoInfo(duration_s=0.04, fps=25.0, width=320, height=240, codec="h264", media_type="image")
    assert isinstance(media_source_for(tmp_path / "one.mp4", single), VideoSource)
