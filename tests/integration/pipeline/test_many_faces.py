"""A crowd in every frame: faces capped per frame (the largest kept) and detection memory bounded."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pipeline import _mtcnn
from pipeline.analyzer import Analyzer
from pipeline.faces import FaceDetector
from tests.utils.media import box_iou, face_mosaic, make_mosaic_video

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def crowd() -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """Two 1280×720 frames of 50 faces each."""
    frames, boxes = zip(*(face_mosaic(1280, 720, patch_height=140, shift=shift) for shift in (0, 3)),
                        strict=True)
    return np.stack(frames), boxes[0]


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(detect_long_side=640, min_face_size=20)


def test_detector_keeps_the_largest_faces_up_to_its_cap(
    detector: FaceDetector, crowd: tuple[np.ndarray, list[Any]]
) -> None:
    frames, truth = crowd
    everyone = detector.detect(frames, max_faces=100)
    assert [len(found) for found in everyone] == [len(truth)] * 2 == [50, 50]
    capped = detector.detect(frames)
    assert detector.max_faces == 16 and [len(found) for found in capped] == [16, 16]
    for kept, found in zip(capped, everyone, strict=True):
        areas = sorted(((d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) for d in found), reverse=True)
        kept_areas = [(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) for d in kept]
        assert kept_areas == pytest.approx(areas[:16])  # the largest, largest first
        assert all(any(box_iou(d.box, t) > 0.6 for t in truth) for d in kept)


def test_detector_runs_its_later_stages_in_bounded_batches(
    detector: FaceDetector, crowd: tuple[np.ndarray, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    frames, _ = crowd
    reference = detector.detect(frames, max_faces=100)
    seen: list[int] = []
    cascade = detector._cascade
    for name in ("rnet", "onet"):
        net = getattr(cascade, name)

        def counting(crops: torch.Tensor, net: torch.nn.Module = net) -> Any:
            seen.append(len(crops))
            return net(crops)

        monkeypatch.setattr(cascade, name, counting)
    monkeypatch.setattr(_mtcnn, "_CANDIDATE_BATCH", 64)
    batched = detector.detect(frames, max_faces=100)
    # Thousands of candidates in a crowd, never more than a batch through a network at once.
    assert sum(seen) > 1000 and max(seen) <= 64
    expected = [[pytest.approx(d.box, abs=1e-3) for d in found] for found in reference]
    assert [[d.box for d in found] for found in batched] == expected


def test_analysis_caps_faces_per_frame(analyzer: Analyzer, media_dir: Path) -> None:
    path, drawn = make_mosaic_video(media_dir / "crowd.mp4", seconds=2.0, fps=5.0)
    assert drawn == 50
    result = analyzer.analyze(path)
    assert [len(frame.faces) for frame in result.frames] == [16] * 6
    # Configurable per job: a worker gives each job a view of its Analyzer with the job's config.
    view = copy.copy(analyzer)
    view.config = analyzer.config.replace(max_faces_per_frame=3)
    assert [len(frame.faces) for frame in view.analyze(path).frames] == [3] * 6
