"""What a worker process holds for its lifetime: settings, sessions, storage, and one Analyzer.

The Analyzer (MTCNN and the classifier) is built once per pool process, in ``worker_process_init``;
the parent process never imports torch, so forking stays safe.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings, get_settings
from core.db import get_session_factory
from core.queue import get_celery
from core.storage import ObjectStore, get_object_store

if TYPE_CHECKING:
    from pipeline.analyzer import Analyzer
    from pipeline.types import AnalysisConfig

__all__ = ["WorkerContext", "analysis_config", "build_context", "context_for", "load_analyzer"]

# Decoding must give up before Celery's soft limit, so the pipeline reports a typed timeout.
_DECODE_MARGIN_S = 10.0


def analysis_config(settings: Settings, options: dict[str, Any] | None = None) -> AnalysisConfig:
    """The pipeline's knobs for one job: service limits plus the job's own options."""
    from pipeline.types import AnalysisConfig

    options = options or {}
    decode_timeout = max(5.0, min(300.0, settings.task_soft_time_limit_s - _DECODE_MARGIN_S))
    return AnalysisConfig(
        sample_fps=float(options.get("sample_fps", settings.default_sample_fps)),
        segment_seconds=float(options.get("segment_seconds", settings.default_segment_seconds)),
        max_frames=settings.max_frames_per_segment,
        max_faces_per_frame=settings.max_faces_per_frame,
        max_width=settings.max_width,
        max_height=settings.max_height,
        max_duration_s=settings.max_duration_s,
        max_image_pixels=settings.max_image_pixels,
        max_image_side=settings.max_image_side,
        max_image_aspect_ratio=settings.max_image_aspect_ratio,
        decode_timeout_s=decode_timeout,
        explain_top_k=settings.explain_top_k,
    )


_analyzer: Analyzer | None = None
_analyzer_lock = threading.Lock()


def load_analyzer(settings: Settings) -> Analyzer:
    """The process's Analyzer, built (model loaded and warmed up) on the first call."""
    global _analyzer
    if _analyzer is None:
        with _analyzer_lock:
            if _analyzer is None:
                from pipeline.analyzer import Analyzer

                _analyzer = Analyzer(
                    model_path=settings.model_path, device=settings.device, config=analysis_config(settings)
                )
    return _analyzer


def _analyzer_for(settings: Settings, options: dict[str, Any]) -> Analyzer:
    """A view of the process's Analyzer with one job's options. The view shares the loaded
    models; only ``config`` differs (each pool process runs one task at a time)."""
    view = copy.copy(load_analyzer(settings))
    view.config = analysis_config(settings, options)
    return view


@dataclass
class WorkerContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    storage: ObjectStore
    celery: Celery
    hostname: str
    analyzer_for: Callable[[dict[str, Any]], Analyzer]

    def session(self) -> Session:
        return self.session_factory()


def build_context(settings: Settings, *, hostname: str) -> WorkerContext:
    return WorkerContext(
        settings=settings,
        session_factory=get_session_factory(settings),
        storage=get_object_store(settings),
        celery=get_celery(settings),
        hostname=hostname,
        analyzer_for=lambda options: _analyzer_for(settings, options),
    )


_contexts: dict[str, WorkerContext] = {}


def context_for(hostname: str | None) -> WorkerContext:
    """This process's context for the node that runs the task (built on first use)."""
    name = hostname or f"worker@{os.uname().nodename}"
    context = _contexts.get(name)
    if context is None:
        context = _contexts[name] = build_context(get_settings(), hostname=name)
    return context
