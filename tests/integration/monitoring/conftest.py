"""Media and a small random checkpoint for the monitoring tests; the platform fixture lives in
test modules that need it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.utils.media import FaceVideo, make_face_video


@pytest.fixture(scope="session", autouse=True)
def _ffmpeg_is_installed() -> None:
    for tool in ("ffmpeg", "ffprobe"):
        assert shutil.which(tool), f"{tool} is required by these tests (apt-get install ffmpeg)"


@pytest.fixture(scope="session")
def monitoring_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("monitoring-media")


@pytest.fixture(scope="session")
def face_clip(monitoring_media: Path) -> FaceVideo:
    """Two seconds, one face crossing a 480×270 frame."""
    return make_face_video(monitoring_media / "face.mp4", seconds=2.0, width=480, height=270, fps=10.0)
