"""The pipeline's monitoring outputs on real decoded video: input statistics per segment, Grad-CAM
heatmaps of the most suspicious faces, and the heatmaps embedded in the CLI's HTML report."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.cli import main
from pipeline.analyzer import Analyzer
from pipeline.quality import video_statistics
from pipeline.report import REPORT_FACES
from pipeline.types import AnalysisConfig
from tests.utils.media import FaceVideo, box_iou, make_face_video

pytestmark = pytest.mark.integration


def _decode_jpeg(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return np.asarray(image)


def test_segments_carry_statistics_and_top_k_heatmaps(face_clip: FaceVideo, random_checkpoint: Path) -> None:
    config = AnalysisConfig(sample_fps=3.0, segment_seconds=1.0, explain_top_k=2)
    result = Analyzer(model_path=random_checkpoint, device="cpu", config=config).analyze(face_clip.path)
    assert len(result.segments) == 2
    for segment in result.segments:
        faces = [(frame, i, face) for frame in segment.frames for i, face in enumerate(frame.faces)]
        assert len(faces) >= 2
        # Exactly the k most suspicious faces of the segment, highest first.
        expected = sorted((face.score for _, _, face in faces), reverse=True)[:2]
        assert [e.score for e in segment.explanations] == pytest.approx(expected)
        for explanation in segment.explanations:
            frame = next(f for f in segment.frames if f.index == explanation.frame_index)
            assert frame.faces[explanation.face].box == explanation.box
            truth = face_clip.face_boxes(explanation.frame_index)[0]
            assert box_iou(explanation.box, truth) > 0.5
            heatmap, crop = _decode_jpeg(explanation.heatmap_jpeg), _decode_jpeg(explanation.crop_jpeg)
            assert heatmap.shape == crop.shape == (128, 128, 3)
            assert np.abs(heatmap.astype(int) - crop.astype(int)).mean() > 2.0
        assert {"quality_s", "explain_s"} <= set(segment.timings)
        quality = segment.quality
        assert quality is not None
        assert quality["frames"] == len(segment.frames) and quality["faces"] == len(faces)

    stats = video_statistics([s.quality for s in result.segments], result.video)
    assert (stats["width"], stats["height"], stats["fps"], stats["codec"]) == (480, 270, 10.0, "h264")
    assert stats["face_frame_ratio"] == pytest.approx(1.0)
    truth = face_clip.face_boxes(0)[0]
    true_size = math.sqrt((truth[2] - truth[0]) * (truth[3] - truth[1]))
    assert stats["face_size_px"] == pytest.approx(true_size, rel=0.25)
    assert 10.0 < stats["brightness_pct"] < 90.0
    assert stats["histogram_variance"] == pytest.approx(stats["histogram_std"] ** 2, rel=0.05)
    assert stats["sharpness"] > 0 and stats["face_sharpness"] > 0


def test_statistics_see_a_darker_video(monitoring_media: Path, random_checkpoint: Path) -> None:
    bright = make_face_video(monitoring_media / "bright.mp4", seconds=1.0, width=320, height=180, fps=10)
    dark = monitoring_media / "dark.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(bright.path),
            "-vf",
            "eq=brightness=-0.3",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(dark),
        ],
        check=True,
    )
    analyzer = Analyzer(model_path=random_checkpoint, device="cpu", config=AnalysisConfig(sample_fps=2))
    bright_result, dark_result = analyzer.analyze(bright.path), analyzer.analyze(dark)
    bright_stats = video_statistics([s.quality for s in bright_result.segments], bright_result.video)
    dark_stats = video_statistics([s.quality for s in dark_result.segments], dark_result.video)
    assert dark_stats["brightness_pct"] < bright_stats["brightness_pct"] - 15


def test_no_explanations_unless_asked(face_clip: FaceVideo, random_checkpoint: Path) -> None:
    analyzer = Analyzer(model_path=random_checkpoint, device="cpu", config=AnalysisConfig())
    result = analyzer.analyze(face_clip.path)
    assert all(not s.explanations for s in result.segments)
    assert all(s.quality is not None for s in result.segments)


def test_cli_report_embeds_heatmaps(
    face_clip: FaceVideo, random_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, result_json = tmp_path / "report.html", tmp_path / "result.json"
    code = main(
        [
            "analyze",
            str(face_clip.path),
            "--model",
            str(random_checkpoint),
            "--json",
            str(result_json),
            "--report",
            str(report),
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    document = report.read_text()
    result = json.loads(result_json.read_text())
    faces = re.findall(r'<img class="crop" alt="[^"]*" src="data:image/jpeg;base64,([^"]+)"', document)
    heatmaps = re.findall(
        r'<img class="heatmap" alt="Grad-CAM[^"]*" src="data:image/jpeg;base64,([^"]+)"', document
    )
    assert len(faces) == REPORT_FACES and len(heatmaps) == len(faces)
    assert "Grad-CAM heatmap over the same crop" in document
    # The faces the service's page would list: the most suspicious explained faces, highest first.
    scores = sorted((face["score"] for frame in result["frames"] for face in frame["faces"]), reverse=True)
    captions = [float(value) for value in re.findall(r"<figcaption>P\(fake\) (0\.\d{3})", document)]
    assert captions == pytest.approx(scores[:REPORT_FACES], abs=6e-4)
    for face_b64, heatmap_b64 in zip(faces, heatmaps, strict=True):
        face, heatmap = _decode_jpeg(base64.b64decode(face_b64)), _decode_jpeg(base64.b64decode(heatmap_b64))
        # The crop the classifier saw (its input size) and the heatmap over that very crop: where
        # the heat is low the two images agree pixel for pixel, up to JPEG noise.
        assert heatmap.shape == face.shape == (128, 128, 3)
        difference = np.abs(heatmap.astype(int) - face.astype(int)).sum(axis=2)
        assert difference.mean() > 5.0
        assert (difference < 24).mean() > 0.1
