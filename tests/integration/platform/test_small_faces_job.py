"""A job whose faces are all too small for the shipped model: the worker keeps why, and the API
(and so the page, which shows the answer's verdict_label and explanation) says faces too small,
not no face found."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.media import make_mosaic_video
from tests.utils.platform import REPO_ROOT
from tests.utils.stack import QUICK_SETTINGS, Stack, running_stack

pytestmark = pytest.mark.integration

SHIPPED = REPO_ROOT / "models" / "deepfakestream.safetensors"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("small-faces"),
        settings={**QUICK_SETTINGS, "MODEL_PATH": str(SHIPPED), "DEFAULT_SEGMENT_SECONDS": "10"},
        worker_name="small-faces",
    ) as running:
        yield running


def test_a_job_of_a_distant_crowd_answers_faces_too_small(stack: Stack, tmp_path: Path) -> None:
    # 1280×720, heads 140 px tall: faces of about 44×55 px, under the shipped model's 72 px.
    video, _ = make_mosaic_video(tmp_path / "crowd.mp4", seconds=1.0, patch_height=140)
    headers = stack.new_key()

    job = stack.wait_job(headers, stack.submit(headers, video)["id"])

    assert job["status"] == "succeeded" and job["verdict"] == "no_face", job
    reason = job["no_face_reason"]
    assert reason is not None and reason["code"] == "faces_too_small", job
    assert reason["faces_seen"] >= 16 and reason["face_size_px"] < reason["min_face_size_px"]
    assert job["verdict_label"] == "Faces too small to score"
    assert job["explanation"] == reason["message"] and "faces were seen" in reason["message"]
    with stack.client(headers) as client:
        listed = client.get("/v1/jobs").json()["items"]
    assert listed[0]["no_face_reason"] == reason
