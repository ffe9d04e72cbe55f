"""The platform on private Redis, PostgreSQL and a cuttable path to S3, for tests that restart,
kill and cut them; shared by the fault tests of a run, which leave every service running."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

import pytest

from core.models import Batch
from tests.utils.media import FaceVideo, make_face_video
from tests.utils.stack import SOURCE_BUCKET, PrivateStack, private_stack


@pytest.fixture(scope="session")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with private_stack(tmp_path_factory.mktemp("fault-stack"), ffmpeg_faults=True) as stack:
        yield stack
        # 503 answers are expected while a dependency is down; anything else 5xx is a defect.
        errors = stack.api_server_errors(allow_unavailable=True)
        assert not errors, "the API answered 5xx (not 503) or crashed:\n" + "\n".join(errors[:10])
        crashed = [line for line in stack.worker_logs().splitlines() if '"internal_error"' in line]
        assert not crashed, "a task crashed:\n" + "\n".join(crashed[:10])


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> FaceVideo:
    """2 s, 320×240, one face: two frames analysed at 1 frame per second, one segment."""
    return make_face_video(
        tmp_path_factory.mktemp("fault-media") / "short.mp4", seconds=2.0, width=320, height=240, fps=10.0
    )


def put_sources(stack: PrivateStack, clip: FaceVideo, count: int, *, prefix: str) -> list[str]:
    """``count`` copies of ``clip`` in the source bucket; their s3:// URIs."""
    data = clip.path.read_bytes()
    client = stack.s3()
    keys = [f"{prefix}/{index:04d}.mp4" for index in range(count)]
    for key in keys:
        client.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=data)
    return [f"s3://{SOURCE_BUCKET}/{key}" for key in keys]


def duplicate_rows(stack: PrivateStack, job_ids: Iterable[uuid.UUID]) -> dict[str, int]:
    return stack.duplicate_rows(job_ids)


def finalized_counts(stack: PrivateStack, job_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    return stack.finalized_counts(job_ids)


def batch_row(stack: PrivateStack, batch_id: uuid.UUID) -> Batch:
    with stack.session() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        return batch
