"""The ML pipeline: probe, decode, faces, SRM + EfficientNet scoring, aggregation, training.

No web and no database here. Heavy modules (torch, MTCNN) load on first use, so importing the
package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError
from pipeline.types import AnalysisConfig, SegmentPlan, SegmentResult, VideoInfo, VideoResult

if TYPE_CHECKING:
    from pipeline.analyze import Analyzer, analyze

__all__ = [
    "AnalysisConfig",
    "Analyzer",
    "PipelineError",
    "SegmentPlan",
    "SegmentResult",
    "VideoInfo",
    "VideoResult",
    "analyze",
]


def __getattr__(name: str) -> Any:
    if name in ("Analyzer", "analyze"):
        from pipeline import analyze as _analyze_module

        return getattr(_analyze_module, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
