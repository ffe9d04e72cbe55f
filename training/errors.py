"""The error a training run stops with: a stable code for logs and an exit status for the command."""

from __future__ import annotations

from pipeline.errors import PipelineError

__all__ = ["TrainingError"]


class TrainingError(PipelineError):
    """A training run that cannot start or go on: bad settings, unusable data, a diverging loss.

    A ``PipelineError`` so the training commands report it like any other error of the steps
    they run; the pipeline itself never raises it.
    """

    code = "training_failed"
    exit_code = 12
