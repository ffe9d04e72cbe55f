"""Videos made once per run with ffmpeg, and one Analyzer (MTCNN + a random checkpoint) for the tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.analyzer import Analyzer
from pipeline.types import AnalysisConfig
from tests.utils.media import FaceVideo, make_face_video


@pytest.fixture(scope="session", autouse=True)
def _ffmpeg_is_installed() -> None:
    # Fail loudly rather than skip: these tests are the point of the pipeline.
    for tool in ("ffmpeg", "ffprobe"):
        assert shutil.which(tool), f"{tool} is required by these tests (apt-get install ffmpeg)"


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def face_1080p(media_dir: Path) -> FaceVideo:
    """The astronaut crossing a 1920×1080 frame in 4 s (10 fps keeps encoding quick)."""
    return make_face_video(media_dir / "face-1080p.mp4", seconds=4.0, width=1920, height=1080, fps=10)


@pytest.fixture(scope="session")
def no_face_video(media_dir: Path) -> FaceVideo:
    return make_face_video(media_dir / "no-face.mp4", seconds=2.0, width=640, height=360, faces=0)


@pytest.fixture(scope="session")
def two_faces_video(media_dir: Path) -> FaceVideo:
    # A third of the way across in 2 s: faces move about half their width between samples.
    return make_face_video(media_dir / "two-faces.mp4", seconds=2.0, width=960, height=540, faces=2,
                           travel=0.3)


@pytest.fixture(scope="session")
def long_video(media_dir: Path) -> FaceVideo:
    """Five seconds, to cut into 2 s segments: 0–2, 2–4, 4–5."""
    return make_face_video(media_dir / "long.mp4", seconds=5.0, width=640, height=360, fps=25, audio=True)


@pytest.fixture(scope="session")
def analyzer(random_checkpoint: Path) -> Analyzer:
    return Analyzer(model_path=random_checkpoint, device="cpu", config=AnalysisConfig())
