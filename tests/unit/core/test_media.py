"""The container sniffer: real files of every known container, and what is not a video."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.media import IMAGE_FORMATS, KNOWN_CONTAINERS, VIDEO_CONTAINERS, content_type_for, sniff_container


@pytest.mark.parametrize(
    ("extension", "codec_args", "container"),
    [
        ("mp4", ["-c:v", "libx264"], "mp4"),
        ("mov", ["-c:v", "libx264"], "mov"),
        ("mkv", ["-c:v", "libx264"], "mkv"),
        ("webm", ["-c:v", "libvpx-vp9", "-b:v", "50k"], "webm"),
        ("avi", ["-c:v", "mpeg4"], "avi"),
        ("ts", ["-c:v", "libx264"], "mpegts"),
        ("flv", ["-c:v", "flv"], "flv"),
    ],
)
def test_sniff_container_recognises_real_files(
    tmp_path: Path, extension: str, codec_args: list[str], container: str
) -> None:
    path = tmp_path / f"clip.{extension}"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=5",
            "-t",
            "0.6",
            *codec_args,
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
    )

    assert sniff_container(path.read_bytes()[:512]) == container


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello world",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
        b"\xff\xd8\xff\xe0" + b"\x00" * 64,
        b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 64,
        b"ID3\x03" + b"\x00" * 64,
    ],
    ids=["empty", "text", "png", "jpeg", "wav", "mp3"],
)
def test_sniff_container_refuses_non_video(head: bytes) -> None:
    assert sniff_container(head) is None


def test_every_known_container_has_a_media_type() -> None:
    assert all(content_type_for(container).startswith("video/") for container in VIDEO_CONTAINERS)
    assert all(content_type_for(name).startswith("image/") for name in IMAGE_FORMATS)
    assert set(KNOWN_CONTAINERS) == set(VIDEO_CONTAINERS) | set(IMAGE_FORMATS)
