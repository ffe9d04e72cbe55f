"""Video input in one import: probe, plan segments and sampled frames, decode only those frames."""

from __future__ import annotations

from pipeline.decode import SegmentDecoder, decode_segment
from pipeline.plan import decoded_size, frame_number, plan_segments, sample_numbers
from pipeline.probe import probe

__all__ = [
    "SegmentDecoder",
    "decode_segment",
    "decoded_size",
    "frame_number",
    "plan_segments",
    "probe",
    "sample_numbers",
]
