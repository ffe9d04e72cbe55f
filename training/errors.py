"""The errors the training commands stop with: a stable code for logs and an exit status."""

from __future__ import annotations

from pipeline.errors import InputError, PipelineError

__all__ = ["PredictionsError", "TrainingError"]


class TrainingError(PipelineError):
    """A training run that cannot start or go on: bad settings, unusable data, a diverging loss.

    A ``PipelineError`` so the training commands report it like any other error of the steps
    they run; the pipeline itself never raises it.
    """

    code = "training_failed"
    exit_code = 12


class PredictionsError(InputError):
    """Predictions files that cannot be compared: a missing column, a label that is neither FAKE
    nor REAL, an item labelled differently in the two files, or too few items of each class."""

    code = "invalid_predictions"
    exit_code = 3
