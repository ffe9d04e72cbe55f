"""The reliability benchmark's own code with 50 jobs: a batch through two worker processes while a
worker is killed and the broker restarted, hostile media submitted beside it and the API polled.
Every job succeeds exactly once, none is lost, no row is stored twice and no answer is a 5xx.
The committed results of the full run (bench/results/reliability.json) must say the same."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.reliability import RESULTS, run
from tests.utils.bad_media import HOSTILE_MEDIA_KINDS, VALID_HOSTILE_MEDIA_KINDS
from tests.utils.hostile_requests import HOSTILE_REQUEST_KINDS

pytestmark = pytest.mark.integration

JOBS = 50
REQUIRED = ("jobs", "faults_injected", "jobs_lost", "duplicate_rows", "server_errors_5xx", "bad_inputs_tried",
            "polling", "jobs_succeeded", "wall_s")  # fmt: skip


def _assert_clean(result: dict[str, object]) -> None:
    assert result["jobs_lost"] == 0, result
    assert result["duplicate_rows"] == 0, result["duplicates"]
    assert result["server_errors_5xx"] == 0, result
    assert result["jobs_succeeded"] == result["jobs"], result


def test_batch_under_faults_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    result = run(jobs=JOBS, root=tmp_path)
    (tmp_path / "reliability.json").write_text(json.dumps(result, indent=2))

    _assert_clean(result)
    assert not result["timed_out"]
    assert result["jobs_never_finalized"] == 0
    assert [fault["kind"] for fault in result["faults_injected"]] == ["worker_sigkill", "broker_restart"]
    assert result["task_crashes"] == 0
    assert result["bad_inputs_tried"] == (
        len(HOSTILE_MEDIA_KINDS) + len(VALID_HOSTILE_MEDIA_KINDS) + len(HOSTILE_REQUEST_KINDS)
    )
    untyped = [outcome for outcome in result["bad_inputs"] if not outcome["typed"]]
    assert not untyped, untyped
    polling = result["polling"]
    assert polling["requests"] >= 50 and math.isfinite(polling["p99_ms"])
    assert set(polling["statuses"]) <= {"200"}, polling


def test_committed_results_are_clean() -> None:
    result = json.loads(RESULTS.read_text())

    assert all(key in result for key in REQUIRED), sorted(set(REQUIRED) - set(result))
    _assert_clean(result)
    assert result["faults_injected"] and result["bad_inputs_tried"] > 0
    kinds = {outcome["kind"] for outcome in result["bad_inputs"]}
    assert set(HOSTILE_REQUEST_KINDS) <= kinds, sorted(set(HOSTILE_REQUEST_KINDS) - kinds)
    assert result["bad_inputs_typed"] == result["bad_inputs_tried"]
    # A 400 MB body without a key never reaches the API's memory.
    assert result["api_peak_rss_mb"] < 400
