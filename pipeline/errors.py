"""Typed pipeline errors: a stable code for APIs and job rows, an exit status for the CLI."""

from __future__ import annotations

__all__ = [
    "AnimatedImageError",
    "CorruptImageError",
    "CorruptVideoError",
    "DecodeError",
    "DecodeTimeoutError",
    "EmptyFileError",
    "InputError",
    "LimitExceededError",
    "ModelError",
    "NoVideoStreamError",
    "NotAVideoError",
    "PipelineError",
    "SourceNotFoundError",
]


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose.

    ``code`` is stable and machine readable (stored on failed jobs, returned by the API);
    ``exit_code`` is what ``deepfakestream analyze`` exits with; ``retryable`` tells a worker
    whether another attempt can succeed (a bad file never will).
    """

    code = "pipeline_error"
    exit_code = 10
    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InputError(PipelineError):
    """The input itself is unusable; retrying the same input cannot help."""

    code = "invalid_input"
    exit_code = 3


class SourceNotFoundError(InputError):
    code = "file_not_found"
    exit_code = 3


class EmptyFileError(InputError):
    code = "empty_file"
    exit_code = 4


class NotAVideoError(InputError):
    code = "not_a_video"
    exit_code = 5


class NoVideoStreamError(InputError):
    code = "no_video_stream"
    exit_code = 6


class CorruptVideoError(InputError):
    code = "corrupt_video"
    exit_code = 7


class CorruptImageError(CorruptVideoError):
    """A still image whose header or pixels cannot be decoded (truncated, damaged)."""

    code = "corrupt_image"


class AnimatedImageError(InputError):
    """An animated GIF, WebP or PNG: more than one frame in an image format. Send it as a video."""

    code = "animated_image"
    exit_code = 5


class LimitExceededError(InputError):
    """Resolution, duration, size or frame count past the configured caps."""

    code = "limit_exceeded"
    exit_code = 8


class ModelError(PipelineError):
    """A checkpoint that is missing, malformed, untrusted or incompatible."""

    code = "model_invalid"
    exit_code = 9


class DecodeError(PipelineError):
    """ffmpeg failed on a file that probed fine (truncated streams end up here too)."""

    code = "decode_failed"
    exit_code = 7


class DecodeTimeoutError(DecodeError):
    code = "decode_timeout"
    exit_code = 11
    retryable = True
