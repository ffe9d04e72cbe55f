"""The pipeline benchmark's measurements, each run by bench/pipeline.py in a process of its own."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

__all__ = [
    "VARIANTS",
    "WINNER_FRAMES",
    "WINNER_THRESHOLDS",
    "run_baseline",
    "run_ffmpeg_alone",
    "run_interleaved",
    "run_optimized",
]

# The DFDC winner's published inference settings.
WINNER_FRAMES = 32
WINNER_THRESHOLDS = (0.85, 0.95, 0.95)
# Pipeline variants measured against each other: name → AnalysisConfig changes.
VARIANTS: dict[str, dict[str, Any]] = {
    "pipeline": {},
    "full_detection": {"detect_interval": 1},
    "full_any_face": {"detect_interval": 1, "max_face_upscale": 0.0},
}


def _peak_rss_mb() -> dict[str, float]:
    """This process's peak resident memory (ffmpeg's is measured in a process of its own)."""
    return {"process_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}  # KiB


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (ffmpeg) so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_optimized(video: Path, model: Path, device: str, runs: int) -> dict[str, Any]:
    started = time.perf_counter()
    from pipeline.analyzer import Analyzer

    imported = time.perf_counter()
    analyzer = Analyzer(model_path=model, device=device)
    loaded = time.perf_counter()
    analyzer.analyze(video)
    cold_done = time.perf_counter()
    warm, cpu = [], []
    for _ in range(runs):
        before = _cpu_seconds()
        warm.append(analyzer.analyze(video))
        cpu.append(_cpu_seconds() - before)
    median = sorted(warm, key=lambda r: r.timings["total_s"])[len(warm) // 2]
    frames = len(median.frames)
    faces = sum(len(f.faces) for f in median.frames)
    timings = median.timings
    return {
        "import_s": imported - started,
        "load_s": loaded - imported,
        "first_analyze_s": cold_done - loaded,
        "cold_s": cold_done - started,
        "warm_s": [r.timings["total_s"] for r in warm],
        "warm_median_s": timings["total_s"],
        "warm_cpu_s": cpu,
        "stages_s": {k: timings[k] for k in ("probe_s", "decode_s", "detect_s", "classify_s")},
        "frames": frames,
        "faces": faces,
        "source_frames": round(median.video.duration_s * median.video.fps),
        "score": median.score,
        "verdict": median.verdict,
        "peak_rss": _peak_rss_mb(),
        "boxes": _boxes(median),
    }


def _boxes(result: Any) -> list[list[list[float]]]:
    """Per sampled frame, its faces' boxes (video pixels)."""
    return [[[round(v, 1) for v in face.box] for face in frame.faces] for frame in result.frames]


def _winner_pass(video: Path, detector: Any, classifier: Any) -> dict[str, Any]:
    """One video through the DFDC winner's approach (see bench/pipeline.py's description)."""
    import cv2
    import numpy as np
    from PIL import Image

    from pipeline.crop import isotropic_resize, pad_to_square

    size = classifier.config.input_size
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    capture = cv2.VideoCapture(str(video))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(np.linspace(0, max(count - 1, 0), WINNER_FRAMES).astype(int).tolist())
    frames = []
    for index in range(max(wanted) + 1):
        if not capture.grab():
            break
        if index in wanted:
            ok, bgr = capture.retrieve()
            if ok:
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    t1 = time.perf_counter()
    height, width = frames[0].shape[:2]
    halves = [Image.fromarray(frame).resize((width // 2, height // 2)) for frame in frames]
    found, _ = detector.detect(halves)
    t2 = time.perf_counter()
    crops, boxes = [], []
    for frame, frame_boxes in zip(frames, found, strict=True):
        kept = [] if frame_boxes is None else [[v * 2.0 for v in box] for box in frame_boxes]
        boxes.append([[round(v, 1) for v in box] for box in kept])
        for x1, y1, x2, y2 in kept:
            pad_w, pad_h = (x2 - x1) / 3.0, (y2 - y1) / 3.0
            top, left = max(int(y1 - pad_h), 0), max(int(x1 - pad_w), 0)
            region = frame[top : int(y2 + pad_h), left : int(x2 + pad_w)]
            if region.size:
                crops.append(pad_to_square(isotropic_resize(region, size), size))
    scores = classifier.predict(np.stack(crops)) if crops else np.zeros((0,), dtype=np.float32)
    cpu3, t3 = _cpu_seconds(), time.perf_counter()
    return {
        "total_s": t3 - t0, "cpu_s": cpu3 - cpu0,
        "stages_s": {"decode_s": t1 - t0, "detect_s": t2 - t1, "classify_s": t3 - t2},
        "frames": len(frames), "faces": len(crops), "source_frames": max(wanted) + 1,
        "score": float(np.mean(scores)) if len(scores) else None, "boxes": boxes,
    }


def run_interleaved(video: Path, model: Path, device: str, rounds: int) -> dict[str, Any]:
    """The pipeline's variants and the winner's approach, loaded once, taking turns for ``rounds``
    rounds (the order rotates each round); per approach its warm median and its runs."""
    import copy

    import torch
    from facenet_pytorch import MTCNN

    from pipeline.analyzer import Analyzer
    from pipeline.model import Classifier, resolve_device

    analyzer = Analyzer(model_path=model, device=device)
    approaches: dict[str, Any] = {}
    for name, changes in VARIANTS.items():
        view = copy.copy(analyzer)
        view.config = analyzer.config.replace(**changes)
        approaches[name] = view
    # The same torch threads as the pipeline (the Analyzer set them): the difference should come
    # from how the work is done, not from a thread setting.
    winner_detector = MTCNN(keep_all=True, margin=0, thresholds=list(WINNER_THRESHOLDS),
                            device=resolve_device(device), post_process=False)
    winner_classifier = Classifier(model, device=device)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in [*approaches, "winner"]}

    def one(name: str) -> dict[str, Any]:
        if name == "winner":
            return _winner_pass(video, winner_detector, winner_classifier)
        before = _cpu_seconds()
        result = approaches[name].analyze(video)
        return {
            "total_s": result.timings["total_s"], "cpu_s": _cpu_seconds() - before,
            "stages_s": {k: result.timings[k] for k in ("probe_s", "decode_s", "detect_s", "classify_s")},
            "frames": len(result.frames), "faces": sum(len(f.faces) for f in result.frames),
            "source_frames": round(result.video.duration_s * result.video.fps),
            "score": result.score, "boxes": _boxes(result),
        }

    names = list(runs)
    for name in names:  # one untimed pass each: caches, allocator, OpenCV's decoder
        one(name)
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            runs[name].append(one(name))
    out: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "rounds": rounds, "approaches": {}}
    for name, measured in runs.items():
        median = sorted(measured, key=lambda r: r["total_s"])[len(measured) // 2]
        out["approaches"][name] = {
            "warm_s": [r["total_s"] for r in measured],
            "warm_median_s": median["total_s"],
            "warm_cpu_s": [r["cpu_s"] for r in measured],
            **{k: median[k] for k in ("stages_s", "frames", "faces", "source_frames", "score", "boxes")},
        }
    out["peak_rss"] = _peak_rss_mb()  # every approach loaded at once
    return out


def _baseline_pass(
    video: Path, detector: Any, classifiers: dict[int, Any], frame_indices: set[int]
) -> dict[int, dict[str, Any]]:
    """One plain pass; decode and detection are shared by the classifiers (one per input size)."""
    import cv2
    import numpy as np

    from pipeline.crop import crop_face

    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    capture = cv2.VideoCapture(str(video))
    sampled: list[np.ndarray] = []
    index = 0
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # every frame, as a plain loop would
        if index in frame_indices:
            sampled.append(rgb)
        index += 1
    capture.release()
    t1 = time.perf_counter()
    detections = []
    for frame in sampled:  # one frame at a time, at full resolution
        boxes, probs = detector.detect(frame)
        kept = [] if boxes is None else [b for b, p in zip(boxes, probs, strict=True) if p >= 0.95]
        detections.append(kept)
    cpu2, t2 = _cpu_seconds(), time.perf_counter()
    results = {}
    for size, classifier in classifiers.items():
        cpu3, t3 = _cpu_seconds(), time.perf_counter()
        scores = []
        for frame, boxes in zip(sampled, detections, strict=True):
            if boxes:
                crops = np.stack([
                    crop_face(frame, box, size=size, **classifier.config.crop_options()) for box in boxes
                ])
                scores.extend(classifier.predict(crops).tolist())
        cpu4, t4 = _cpu_seconds(), time.perf_counter()
        results[size] = {
            "total_s": (t2 - t0) + (t4 - t3), "cpu_s": (cpu2 - cpu0) + (cpu4 - cpu3),
            "decode_s": t1 - t0, "detect_s": t2 - t1, "classify_s": t4 - t3,
            "decoded_frames": index, "frames": len(sampled), "faces": sum(len(d) for d in detections),
            "score": float(np.mean(scores)) if scores else None,
        }
    return results


def run_baseline(
    video: Path, models: list[Path], device: str, runs: int, min_face_px: int
) -> dict[str, Any]:
    started = time.perf_counter()
    import math

    import torch
    from facenet_pytorch import MTCNN

    from pipeline.media_source import open_media_source
    from pipeline.model import Classifier, resolve_device
    from pipeline.types import AnalysisConfig

    imported = time.perf_counter()
    # The same CPU thread count as the pipeline: the speed-up should come from how the work is
    # done, not from a thread setting.
    torch.set_num_threads(AnalysisConfig().torch_threads or max(1, (os.cpu_count() or 2) // 2))
    torch_device = resolve_device(device)
    detector = MTCNN(keep_all=True, min_face_size=min_face_px, device=torch_device, post_process=False)
    classifiers = {}
    for model in models:
        classifier = Classifier(model, device=device)
        classifiers[classifier.config.input_size] = classifier  # loads and warms up, as the pipeline does
    loaded = time.perf_counter()
    source = open_media_source(video)
    info = source.info
    indices = {math.floor(t * info.fps + 1e-6) for plan in source.plan(AnalysisConfig())
               for t in plan.frame_times}
    first = _baseline_pass(video, detector, classifiers, indices)
    passes = [_baseline_pass(video, detector, classifiers, indices) for _ in range(runs)] or [first]
    out: dict[str, Any] = {"min_face_px": min_face_px, "sizes": {}}
    for size in classifiers:
        warm = [p[size] for p in passes]
        median = sorted(warm, key=lambda r: r["total_s"])[len(warm) // 2]
        out["sizes"][str(size)] = {
            "import_s": imported - started,
            "load_s": loaded - imported,
            "first_analyze_s": first[size]["total_s"],
            "cold_s": (loaded - started) + first[size]["total_s"],
            "warm_s": [r["total_s"] for r in warm],
            "warm_median_s": median["total_s"],
            "warm_cpu_s": [r["cpu_s"] for r in warm],
            "stages_s": {k: median[k] for k in ("decode_s", "detect_s", "classify_s")},
            "frames": median["frames"],
            "faces": median["faces"],
            "source_frames": median["decoded_frames"],
            "score": median["score"],
            "peak_rss": _peak_rss_mb(),  # the whole process: every classifier loaded at once
        }
    return out


def run_ffmpeg_alone(video: Path) -> dict[str, Any]:
    """ffmpeg's own peak RSS while decoding the clip's segments, from a process without torch.

    The analysis process cannot tell: a child's peak RSS includes the parent's pages it shared
    between fork and exec, so there it would count the whole Python process twice.
    """
    from pipeline.media_source import open_media_source

    source = open_media_source(video)
    for plan in source.plan():
        source.decode(plan)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"ffmpeg_peak_mb": round(children, 1), "spawning_process_mb": round(own, 1)}
