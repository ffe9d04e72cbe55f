"""The ML pipeline: probe, decode, faces, SRM + EfficientNet scoring, aggregation.

``pipeline.analyze(path, ...)`` is the entry the command line calls; the worker runs the same
steps one segment at a time through ``pipeline.Analyzer``. No web and no database here. Both
names live in ``pipeline.analyzer`` and load it (torch, MTCNN) on first use, so importing the
package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError
from pipeline.types import AnalysisConfig, SegmentPlan, SegmentResult, VideoInfo, VideoResult

if TYPE_CHECKING:
    from pipeline.analyzer import Analyzer, analyze

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

_LAZY = frozenset({"Analyzer", "analyze"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module("pipeline.analyzer"), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
