"""Faces too small for the model are said to be so: a crowd filmed from afar ends ``no_face`` with
a typed ``faces_too_small`` reason (how many faces, how large, against the smallest the model
scores), with the shipped checkpoint, whose minimum at 720p is larger than the faces."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline
from core.cli import main
from tests.utils.media import FaceVideo, make_mosaic_video
from tests.utils.platform import REPO_ROOT

pytestmark = pytest.mark.integration

SHIPPED = REPO_ROOT / "models" / "deepfakestream.safetensors"


@pytest.fixture(scope="module")
def distant_crowd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 1280×720, heads 140 px tall: faces of about 44×55 px, dozens of them.
    path, _ = make_mosaic_video(tmp_path_factory.mktemp("crowd") / "crowd.mp4", seconds=1.0, patch_height=140)
    return path


def test_a_distant_crowd_is_faces_too_small_not_no_face(distant_crowd: Path) -> None:
    result = pipeline.analyze(distant_crowd, model_path=SHIPPED, device="cpu")
    doc = result.to_dict()

    assert result.verdict == "no_face" and result.frames and not any(f.faces for f in result.frames)
    reason = doc["no_face_reason"]
    assert reason["code"] == "faces_too_small", doc
    assert reason["faces_seen"] >= 16
    assert 45 <= reason["face_size_px"] <= 65 < reason["min_face_size_px"], reason
    assert doc["verdict_label"] == "Faces too small to score"
    assert doc["explanation"] == reason["message"]
    assert f"{reason['faces_seen']} faces were seen" in reason["message"]
    assert f"{reason['min_face_size_px']:.0f} pixels this model needs" in reason["message"]


def test_no_face_at_all_stays_no_face_found(no_face_video: FaceVideo) -> None:
    result = pipeline.analyze(no_face_video.path, model_path=SHIPPED, device="cpu")

    assert result.verdict == "no_face" and result.no_face_reason is None
    assert result.to_dict()["verdict_label"] == "No face found"


def test_analyze_says_the_faces_were_too_small(
    distant_crowd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analyze", str(distant_crowd), "--model", str(SHIPPED), "--device", "cpu"]) == 0

    out = capsys.readouterr().out
    assert "Faces too small to score" in out and "faces were seen" in out
