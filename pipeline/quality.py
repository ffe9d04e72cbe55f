"""Input statistics of the frames and faces the model saw, kept as mergeable sums.

Brightness, luma histogram moments, sharpness (variance of the Laplacian), face size, plus the
video's resolution, frame rate and codec. They describe what arrives, not what the model thinks,
so operators can tell when incoming videos stop looking like the ones the model was trained and
calibrated on (see core.drift). Sums (count, sum, sum of squares, min, max) let segments analysed
by different workers combine into exactly the numbers one pass over the video would give.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from pipeline.types import VideoInfo

__all__ = [
    "FACE_STATISTICS",
    "FRAME_STATISTICS",
    "QUALITY_LONG_SIDE",
    "QualityStats",
    "RunningStat",
    "face_statistics",
    "frame_statistics",
    "measure_segment",
    "video_statistics",
]

FRAME_STATISTICS = ("brightness_pct", "histogram_mean", "histogram_std", "histogram_variance", "sharpness")
FACE_STATISTICS = ("face_size_px", "face_size_ratio", "face_sharpness")
# Frames are measured at this long side, so sharpness compares across resolutions at least as
# far as downscaling allows (the Laplacian's variance grows with detail per pixel).
QUALITY_LONG_SIDE = 640
# Faces are measured at a fixed size, close to what the classifier sees.
FACE_MEASURE_SIZE = 128
_LEVELS = np.arange(256, dtype=np.float64)


@dataclass
class RunningStat:
    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    def add(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value):
            return
        self.count += 1
        self.total += value
        self.total_sq += value * value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def merge(self, other: RunningStat) -> None:
        self.count += other.count
        self.total += other.total
        self.total_sq += other.total_sq
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def std(self) -> float | None:
        if not self.count:
            return None
        mean = self.total / self.count
        return math.sqrt(max(self.total_sq / self.count - mean * mean, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "sum": self.total,
            "sum_sq": self.total_sq,
            "min": self.minimum if self.count else None,
            "max": self.maximum if self.count else None,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RunningStat:
        count = int(doc.get("count", 0))
        return cls(
            count=count,
            total=float(doc.get("sum", 0.0)),
            total_sq=float(doc.get("sum_sq", 0.0)),
            minimum=float(doc["min"]) if count and doc.get("min") is not None else math.inf,
            maximum=float(doc["max"]) if count and doc.get("max") is not None else -math.inf,
        )


@dataclass
class QualityStats:
    """Sums over the sampled frames (and their faces) of one segment, or of several merged."""

    frames: int = 0
    frames_with_faces: int = 0
    faces: int = 0
    stats: dict[str, RunningStat] = field(
        default_factory=lambda: {name: RunningStat() for name in (*FRAME_STATISTICS, *FACE_STATISTICS)}
    )

    def merge(self, other: QualityStats) -> None:
        self.frames += other.frames
        self.frames_with_faces += other.frames_with_faces
        self.faces += other.faces
        for name, stat in other.stats.items():
            self.stats.setdefault(name, RunningStat()).merge(stat)

    def means(self) -> dict[str, float | None]:
        return {name: stat.mean for name, stat in self.stats.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "frames_with_faces": self.frames_with_faces,
            "faces": self.faces,
            "stats": {name: stat.to_dict() for name, stat in self.stats.items()},
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> QualityStats:
        quality = cls(
            frames=int(doc.get("frames", 0)),
            frames_with_faces=int(doc.get("frames_with_faces", 0)),
            faces=int(doc.get("faces", 0)),
        )
        for name, stat in (doc.get("stats") or {}).items():
            quality.stats[name] = RunningStat.from_dict(stat)
        return quality


def _luma(frame: np.ndarray) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _downscale(gray: np.ndarray, long_side: int) -> np.ndarray:
    height, width = gray.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1.0:
        return gray
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _laplacian_variance(gray: np.ndarray) -> float:
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def frame_statistics(frame: np.ndarray) -> dict[str, float]:
    """Brightness (% of full scale), the luma histogram's mean / standard deviation / variance
    (0–255 scale) and sharpness (variance of the Laplacian at ``QUALITY_LONG_SIDE``)."""
    gray = _downscale(_luma(frame), QUALITY_LONG_SIDE)
    histogram = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    share = histogram / histogram.sum()
    mean = float(np.sum(share * _LEVELS))
    variance = float(np.sum(share * (_LEVELS - mean) ** 2))
    return {
        "brightness_pct": mean / 255.0 * 100.0,
        "histogram_mean": mean,
        "histogram_std": math.sqrt(variance),
        "histogram_variance": variance,
        "sharpness": _laplacian_variance(gray),
    }


def face_statistics(
    frame: np.ndarray, box: Sequence[float], *, scale: tuple[float, float] = (1.0, 1.0)
) -> dict[str, float]:
    """Size of the face (in video pixels: ``scale`` maps the frame's pixels to the video's), its
    height relative to the frame, and its sharpness measured at ``FACE_MEASURE_SIZE``."""
    height, width = frame.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    left, top = max(0, math.floor(x1)), max(0, math.floor(y1))
    right, bottom = min(width, math.ceil(x2)), min(height, math.ceil(y2))
    box_w, box_h = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
    stats = {
        "face_size_px": math.sqrt(box_w * scale[0] * box_h * scale[1]),
        "face_size_ratio": box_h / height if height else math.nan,
    }
    if right - left >= 2 and bottom - top >= 2:
        region = _luma(np.ascontiguousarray(frame[top:bottom, left:right]))
        region = cv2.resize(
            region,
            (FACE_MEASURE_SIZE, FACE_MEASURE_SIZE),
            interpolation=cv2.INTER_AREA if max(region.shape) > FACE_MEASURE_SIZE else cv2.INTER_CUBIC,
        )
        stats["face_sharpness"] = _laplacian_variance(region)
    return stats


def measure_segment(
    frames: np.ndarray | Sequence[np.ndarray],
    boxes: Sequence[Sequence[Sequence[float]]],
    *,
    scale: tuple[float, float] = (1.0, 1.0),
) -> QualityStats:
    """Statistics of one segment's sampled frames; ``boxes[i]`` are the faces of frame ``i`` in the
    frame's own pixels."""
    if len(frames) != len(boxes):
        raise ValueError(f"{len(frames)} frames but {len(boxes)} lists of boxes")
    quality = QualityStats()
    for frame, frame_boxes in zip(frames, boxes, strict=True):
        quality.frames += 1
        for name, value in frame_statistics(frame).items():
            quality.stats[name].add(value)
        if frame_boxes:
            quality.frames_with_faces += 1
        for box in frame_boxes:
            quality.faces += 1
            for name, value in face_statistics(frame, box, scale=scale).items():
                quality.stats[name].add(value)
    return quality


def video_statistics(
    segments: Iterable[QualityStats | Mapping[str, Any] | None], info: VideoInfo
) -> dict[str, Any]:
    """One video's input statistics: means over every sampled frame and face of its segments,
    with its resolution, frame rate, codec and duration. Keys match ``core.drift.FEATURES``."""
    total = QualityStats()
    for segment in segments:
        if segment is None:
            continue
        total.merge(segment if isinstance(segment, QualityStats) else QualityStats.from_dict(segment))
    document: dict[str, Any] = dict(total.means())
    # A still image has no frame rate or duration: left out of the drift of video inputs.
    still = info.media_type == "image"
    document.update(
        {
            "frames_sampled": total.frames,
            "faces": total.faces,
            "faces_per_frame": total.faces / total.frames if total.frames else None,
            "face_frame_ratio": total.frames_with_faces / total.frames if total.frames else None,
            "width": info.width,
            "height": info.height,
            "fps": None if still else info.fps,
            "codec": info.codec,
            "duration_s": None if still else info.duration_s,
        }
    )
    document["spread"] = {
        name: {"std": stat.std, "min": stat.to_dict()["min"], "max": stat.to_dict()["max"]}
        for name, stat in total.stats.items()
        if stat.count
    }
    return document
