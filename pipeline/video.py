"""Video input in one import: probe, plan segments and sampled frames, decode only those frames.

Still images come through the same names: ``probe`` reads them with Pillow, ``plan_segments``
plans their one frame, and ``open_decoder`` / ``decode_segment`` decode it (``pipeline.image``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import decode as _decode
from pipeline.decode import SegmentDecoder
from pipeline.image import StillDecoder, is_still
from pipeline.plan import decoded_size, frame_number, plan_segments, sample_numbers
from pipeline.probe import probe
from pipeline.types import AnalysisConfig, SegmentPlan, VideoInfo

__all__ = [
    "SegmentDecoder",
    "StillDecoder",
    "decode_segment",
    "decoded_size",
    "frame_number",
    "open_decoder",
    "plan_segments",
    "probe",
    "sample_numbers",
]


def open_decoder(
    path: str | Path, info: VideoInfo, plan: SegmentPlan, config: AnalysisConfig | None = None
) -> SegmentDecoder | StillDecoder:
    """The decoder of one segment: ffmpeg for a video, Pillow for a still image."""
    if is_still(info):
        return StillDecoder(path, info, plan, config)
    return SegmentDecoder(path, info, plan, config)


def decode_segment(
    path: str | Path, info: VideoInfo, plan: SegmentPlan, config: AnalysisConfig | None = None
) -> tuple[list[float], np.ndarray]:
    """The frames ``plan`` samples, whole: (their times, uint8 N×H×W×3 RGB)."""
    if is_still(info):
        with StillDecoder(path, info, plan, config) as still:
            return still.times, still.frames
    return _decode.decode_segment(path, info, plan, config)
