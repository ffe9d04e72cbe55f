"""The limits the README states are the limits the code enforces by default."""

from __future__ import annotations

import re

from core.config import Settings
from pipeline.types import AnalysisConfig
from tests.utils.platform import REPO_ROOT


def _readme() -> str:
    return " ".join((REPO_ROOT / "README.md").read_text(encoding="utf-8").split())


def test_readme_duration_caps_match_the_defaults() -> None:
    text = _readme()
    service = Settings.model_fields["max_duration_s"].default
    library = AnalysisConfig().max_duration_s

    pattern = r"duration cap \(`MAX_DURATION_S`, (\d+) h by default in the service; (\d+) h for"
    match = re.search(pattern, text)
    assert match is not None, "the README must state the service's and the library's duration caps"
    assert float(match.group(1)) * 3600 == service
    assert float(match.group(2)) * 3600 == library
    # No other figure for the cap anywhere in the README.
    for stated in re.findall(r"duration cap \(([^)]*)\)", text):
        assert "MAX_DURATION_S" in stated


def test_service_passes_its_duration_cap_to_the_pipeline() -> None:
    from worker.runtime import analysis_config

    settings = Settings(max_duration_s=1234.0)
    assert analysis_config(settings).max_duration_s == 1234.0
