"""The whole pipeline on generated videos: faces found where they are, tracks, segments, no-face videos."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from skimage import data

from pipeline.analyzer import Analyzer
from pipeline.faces import FaceDetector
from pipeline.types import AnalysisConfig, SegmentResult
from tests.utils.media import ASTRONAUT_FACE_BOX, FaceVideo, box_iou
from tests.utils.platform import REPO_ROOT

pytestmark = pytest.mark.integration


def test_detector_finds_the_astronaut_with_landmarks_inside_the_box() -> None:
    image = data.astronaut()
    frames = np.stack([image, image[:, ::-1].copy(), np.zeros_like(image)])
    detector = FaceDetector(detect_long_side=512, min_face_size=20)
    found = detector.detect(frames)
    assert [len(f) for f in found] == [1, 1, 0]
    face = found[0][0]
    # The reference box (in the 250×280 head patch cut at x 100, y 10) shifted back.
    x1, y1, x2, y2 = ASTRONAUT_FACE_BOX
    assert box_iou(face.box, (x1 + 100, y1 + 10, x2 + 100, y2 + 10)) > 0.85
    assert face.score > 0.99
    assert len(face.landmarks) == 5
    assert all(face.box[0] < x < face.box[2] and face.box[1] < y < face.box[3] for x, y in face.landmarks)
    # Left eye left of the right eye, both above the mouth corners.
    (left_x, left_y), (right_x, right_y), _, (_, mouth_left_y), (_, mouth_right_y) = face.landmarks
    assert left_x < right_x and max(left_y, right_y) < min(mouth_left_y, mouth_right_y)
    mirrored = found[1][0]
    assert box_iou(mirrored.box, (512 - face.box[2], face.box[1], 512 - face.box[0], face.box[3])) > 0.8


def test_face_crossing_1080p_is_found_in_the_right_place_in_every_frame(
    analyzer: Analyzer, face_1080p: FaceVideo
) -> None:
    result = analyzer.analyze(face_1080p.path)
    assert len(result.frames) == 12  # 4 s at 3 frames per second
    for frame in result.frames:
        # The sampled frame is the source frame at its time...
        assert frame.index == round(frame.t * face_1080p.fps)
        assert len(frame.faces) == 1, f"frame {frame.index}: {len(frame.faces)} faces"
        (face,) = frame.faces
        (truth,) = face_1080p.face_boxes(frame.index)
        # ...and the face is where it is in that very frame: it moves 44 px per source frame,
        # so a neighbouring frame's box would overlap far less.
        assert box_iou(face.box, truth) > 0.75, (frame.index, face.box, truth)
        assert face.det_score >= 0.95
        assert 0.0 < face.score < 1.0
        assert face.track == 1
    assert [t.id for t in result.tracks] == [1]
    assert result.tracks[0].faces == 12
    assert result.verdict in ("fake", "real")
    assert result.score == pytest.approx(float(np.mean([f.score for f in result.frames])))
    assert result.model["trained"] is False
    assert set(result.timings) == {"probe_s", "decode_s", "detect_s", "classify_s", "total_s"}
    assert result.rtf is not None and result.rtf > 0


def test_video_without_a_face_is_no_face(analyzer: Analyzer, no_face_video: FaceVideo) -> None:
    result = analyzer.analyze(no_face_video.path)
    assert result.verdict == "no_face"
    assert result.score is None
    assert len(result.frames) == 6
    assert all(f.faces == [] and f.score is None for f in result.frames)
    assert result.tracks == []
    assert result.to_dict()["score"] is None


def test_two_faces_make_two_tracks(analyzer: Analyzer, two_faces_video: FaceVideo) -> None:
    result = analyzer.analyze(two_faces_video.path)
    assert [len(f.faces) for f in result.frames] == [2] * 6
    assert sorted(t.id for t in result.tracks) == [1, 2]
    assert all(t.faces == 6 for t in result.tracks)
    lane_of_track: dict[int, int] = {}
    for frame in result.frames:
        truths = two_faces_video.face_boxes(frame.index)
        for face in frame.faces:
            lane = max(range(2), key=lambda k: box_iou(face.box, truths[k]))
            assert box_iou(face.box, truths[lane]) > 0.7
            # Each track stays on its own lane from the first frame to the last.
            assert lane_of_track.setdefault(face.track, lane) == lane
    assert sorted(lane_of_track.values()) == [0, 1]
    # A frame's score is its most suspicious face's.
    for frame in result.frames:
        assert frame.score == max(f.score for f in frame.faces)


def test_several_segments_one_track_and_the_steps_match_the_whole(
    random_checkpoint: object, long_video: FaceVideo
) -> None:
    config = AnalysisConfig(segment_seconds=2.0)
    analyzer = Analyzer(model_path=random_checkpoint, device="cpu", config=config)  # type: ignore[arg-type]
    whole = analyzer.analyze(long_video.path)
    assert [(s.index, s.start_s, s.end_s) for s in whole.segments] == [
        (0, 0.0, 2.0), (1, 2.0, 4.0), (2, 4.0, 5.0)
    ]
    assert [len(s.frames) for s in whole.segments] == [6, 6, 3]
    # The face is tracked across segment boundaries: one track for the whole video.
    assert [t.id for t in whole.tracks] == [1]
    # The last sample, 4.667 s, is the nearest whole frame at 25 fps: frame 117, 4.68 s.
    assert whole.tracks[0].first_t == 0.0 and whole.tracks[0].last_t == pytest.approx(4.68)

    # The worker's way: separate steps, segments finished out of order, rebuilt from plain data.
    source = analyzer.open(long_video.path)
    info = source.info
    plans = analyzer.plan(source)
    segments = [analyzer.analyze_segment(source, plan) for plan in reversed(plans)]
    assert all(f.track == 1 for s in segments for fr in s.frames for f in fr.faces)  # local ids
    rebuilt = [SegmentResult(**{f.name: getattr(s, f.name) for f in dataclasses.fields(s)}) for s in segments]
    stepwise = analyzer.finalize(info, rebuilt, {"probe_s": 0.01})
    assert stepwise.verdict == whole.verdict
    assert stepwise.score == pytest.approx(whole.score)
    assert [t.id for t in stepwise.tracks] == [1]
    assert [f.t for f in stepwise.frames] == [f.t for f in whole.frames]
    assert stepwise.timings["probe_s"] == 0.01
    # finalize leaves its inputs alone (a worker may retry it).
    assert [f.faces[0].track for s in segments for f in s.frames] == [1] * 15


def test_confident_aggregation_is_selectable(random_checkpoint: object, no_face_video: FaceVideo,
                                             face_1080p: FaceVideo) -> None:
    config = AnalysisConfig(aggregation="confident")
    analyzer = Analyzer(model_path=random_checkpoint, device="cpu", config=config)  # type: ignore[arg-type]
    result = analyzer.analyze(face_1080p.path)
    scores = [f.score for f in result.frames]
    # Twelve frames of an untrained model cluster near 0.5: neither confident branch applies.
    assert result.score == pytest.approx(float(np.mean(scores)))
    assert analyzer.analyze(no_face_video.path).verdict == "no_face"


def test_the_package_entry_point_analyses_a_video_in_a_fresh_interpreter(
    random_checkpoint: object, analyzer: Analyzer, long_video: FaceVideo
) -> None:
    code = (
        "import json, pipeline\n"
        f"result = pipeline.analyze({str(long_video.path)!r}, model_path={str(random_checkpoint)!r},"
        " device='cpu')\n"
        "print(json.dumps({'verdict': result.verdict, 'score': result.score,"
        " 'frames': len(result.frames)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    here = analyzer.analyze(long_video.path)
    assert fresh["frames"] == len(here.frames) == 15
    assert fresh["verdict"] == here.verdict
    assert fresh["score"] == pytest.approx(here.score, abs=1e-5)


def test_explained_faces_share_one_heat_scale(analyzer: Analyzer) -> None:
    """Two copies of one crop, kept as a 0.04 and a 0.99 face: the same Grad-CAM map, so only the
    score can make one overlay hotter than the other."""
    import cv2

    from pipeline.explain import TopCrops

    size = analyzer.model_config.input_size
    crop = np.full((size, size, 3), 128, dtype=np.uint8)
    crop[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = (200, 160, 140)
    kept = TopCrops(2)
    kept.offer(np.array([0.04, 0.99]), [crop, crop.copy()], first=0)
    explained = analyzer._explain(kept)

    def tint(position: int) -> np.ndarray:
        overlay_jpeg, crop_jpeg = explained[position]
        overlay, shown = (
            cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).astype(int)
            for data in (overlay_jpeg, crop_jpeg)
        )
        return np.abs(overlay - shown).sum(axis=2)

    low, high = tint(0), tint(1)
    assert high.max() >= 60, high.max()
    assert low.max() < high.max() / 4, (low.max(), high.max())
    assert high.mean() > 5 * low.mean(), (low.mean(), high.mean())
