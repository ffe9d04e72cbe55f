"""The batch command's summary line: counts by state and verdicts in the words of core.verdicts."""

from __future__ import annotations

from api.cli_batch import _summary_line
from core.verdicts import LABELS


def _batch(verdicts: dict[str, int]) -> dict[str, object]:
    return {
        "id": "7d1f0c2e-0000-4000-8000-000000000001",
        "status": "completed",
        "jobs_finished": 6,
        "jobs_total": 6,
        "counts": {"queued": 0, "processing": 0, "succeeded": 5, "failed": 1, "canceled": 0},
        "verdicts": verdicts,
    }


def test_summary_line_says_verdicts_in_the_words_of_the_page() -> None:
    line = _summary_line(_batch({"fake": 2, "real": 1, "inconclusive": 1, "no_face": 1}))

    assert line == (
        "batch 7d1f0c2e-0000-4000-8000-000000000001 completed: 6/6 ended "
        "(succeeded 5, failed 1, canceled 0; Signs of manipulation: 2, "
        "No signs of manipulation found by this model: 1, Inconclusive: 1, No face found: 1)"
    )
    # "real" is what the model did not find: never worded as a clearance.
    assert "no manipulation detected" not in line.lower()
    assert all(words in line for words in LABELS.values())


def test_summary_line_of_a_model_without_a_band_counts_no_inconclusive() -> None:
    line = _summary_line(_batch({"fake": 0, "real": 5, "no_face": 0}))

    assert "No signs of manipulation found by this model: 5, Inconclusive: 0" in line
