"""The job state machine allows exactly the documented moves."""

from __future__ import annotations

import pytest

from core.states import TERMINAL_JOB_STATES, JobStatus, can_transition


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("queued", "processing"),
        ("queued", "canceled"),
        ("queued", "failed"),
        ("processing", "succeeded"),
        ("processing", "failed"),
        ("processing", "canceled"),
        ("processing", "queued"),
    ],
)
def test_allowed_moves(current: str, target: str) -> None:
    assert can_transition(current, target)


@pytest.mark.parametrize("terminal", sorted(TERMINAL_JOB_STATES))
@pytest.mark.parametrize("target", list(JobStatus))
def test_terminal_states_never_move(terminal: JobStatus, target: JobStatus) -> None:
    assert not can_transition(terminal, target)


def test_queued_cannot_succeed_without_processing() -> None:
    assert not can_transition(JobStatus.QUEUED, JobStatus.SUCCEEDED)
