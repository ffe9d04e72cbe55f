"""A training run's error keeps its code and exit status, and the training commands catch it."""

from __future__ import annotations

from pipeline.errors import PipelineError
from training.errors import TrainingError


def test_training_error_keeps_its_code_and_exit_status() -> None:
    error = TrainingError("--epochs must be ≥ 1", code="invalid_arguments")
    assert isinstance(error, PipelineError)
    assert (TrainingError.code, TrainingError.exit_code) == ("training_failed", 12)
    assert (error.code, error.exit_code, str(error)) == ("invalid_arguments", 12, "--epochs must be ≥ 1")
