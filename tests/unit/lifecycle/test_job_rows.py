"""A new job's column values: queued, with the media type of its sniffed container."""

from __future__ import annotations

import uuid

from core.states import JobStatus
from lifecycle.job_rows import new_job_values


def _values(container: str | None) -> dict[str, object]:
    return new_job_values(
        tenant_id=uuid.uuid4(),
        video_id=uuid.uuid4(),
        container=container,
        options={"sample_fps": 3.0},
        external_id="ext",
    )


def test_a_new_job_is_queued_with_the_media_type_of_its_container() -> None:
    assert _values("jpeg")["media_type"] == "image"
    assert _values("mp4")["media_type"] == "video"
    assert _values(None)["media_type"] == "video"  # not sniffed yet: the probe decides
    values = _values("png")
    assert values["status"] == JobStatus.QUEUED.value and values["priority"] == 0
    assert values["batch_id"] is None and values["callback_url"] is None


def test_each_new_job_has_its_own_id_and_options() -> None:
    options = {"sample_fps": 3.0}
    first = new_job_values(
        tenant_id=uuid.uuid4(), video_id=uuid.uuid4(), container=None, options=options, external_id=None
    )
    second = new_job_values(
        tenant_id=uuid.uuid4(), video_id=uuid.uuid4(), container=None, options=options, external_id=None
    )
    assert first["id"] != second["id"]
    assert first["options"] == options and first["options"] is not options
