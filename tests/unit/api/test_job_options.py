"""The API's sampling default and range are the shared ones (core.media), as the command line's are."""

from __future__ import annotations

from api.schemas.jobs import JobOptions
from core.config import Settings
from core.media import DEFAULT_SAMPLE_FPS, MAX_SAMPLE_FPS, MIN_SAMPLE_FPS


def test_settings_start_from_the_shared_sampling_range() -> None:
    fields = Settings.model_fields
    assert fields["default_sample_fps"].default == DEFAULT_SAMPLE_FPS
    assert (fields["min_sample_fps"].default, fields["max_sample_fps"].default) == (
        MIN_SAMPLE_FPS,
        MAX_SAMPLE_FPS,
    )


def test_the_schema_documents_the_range() -> None:
    description = JobOptions.model_fields["sample_fps"].description or ""
    assert f"{MIN_SAMPLE_FPS:g} to {MAX_SAMPLE_FPS:g}" in description
    assert f"default {DEFAULT_SAMPLE_FPS:g}" in description
