"""`deepfakestream analyze` takes the same sampling rates as the API: one default, one range."""

from __future__ import annotations

import argparse

import pytest

from core.media import DEFAULT_SAMPLE_FPS, MAX_SAMPLE_FPS, MIN_SAMPLE_FPS
from pipeline.cli_analyze import _config_from, add_arguments
from pipeline.types import AnalysisConfig


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["clip.mp4", *argv])


@pytest.mark.parametrize("rate", [MIN_SAMPLE_FPS, 1.0, MAX_SAMPLE_FPS])
def test_rates_in_the_range_are_taken(rate: float) -> None:
    assert _config_from(_args("--sample-fps", str(rate))).sample_fps == rate


@pytest.mark.parametrize("rate", ["0", "0.05", "30.5", "60", "-1"])
def test_rates_out_of_the_range_are_refused_with_the_range(rate: str) -> None:
    with pytest.raises(ValueError, match=r"--sample-fps must be between 0\.1 and 30 frames a second"):
        _config_from(_args("--sample-fps", rate))


def test_the_default_is_the_shared_one() -> None:
    assert _config_from(_args()).sample_fps == AnalysisConfig().sample_fps == DEFAULT_SAMPLE_FPS
