"""The platform for webhook and batch tests, with a loopback receiver and an HTTPS file server.

The same real services as the platform tests, with one worker that also consumes the webhooks
queue, set up for loopback receivers, fast retries and a small per-tenant limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.platform.conftest import SOURCE_BUCKET, TEST_SETTINGS, platform_stack
from tests.utils.media import FaceVideo, make_face_video
from tests.utils.receiver import Receiver, running_receiver
from tests.utils.stack import Stack
from tests.utils.tls import TlsFiles, make_certificates

IN_FLIGHT_LIMIT = 40
RETRY_SCHEDULE_S = (0.5, 0.5, 0.5, 0.5)  # four retries: five attempts at most

HOOKS_SETTINGS = {
    **TEST_SETTINGS,
    # Backlogs wait for minutes here by design; the reconciler must not re-send their messages.
    "RECONCILE_QUEUED_AFTER_S": "300",
    "WEBHOOK_ALLOW_PRIVATE": "true",
    "WEBHOOK_RETRY_SCHEDULE_S": ",".join(str(delay) for delay in RETRY_SCHEDULE_S),
    "WEBHOOK_RETRY_JITTER": "0.1",
    "WEBHOOK_DISPATCH_INTERVAL_S": "0.5",
    "WEBHOOK_REDISPATCH_AFTER_S": "20",
    "WEBHOOK_TIMEOUT_S": "5",
    "MAX_JOBS_IN_FLIGHT_PER_TENANT": str(IN_FLIGHT_LIMIT),
    "DEFAULT_SAMPLE_FPS": "1",
}


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def hooks_platform(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[Stack]:
    with platform_stack(
        tmp_path_factory.mktemp("hooks-platform"),
        storage_path="hooks",
        settings={**HOOKS_SETTINGS, "OUTBOUND_CA_BUNDLE": str(tls_files.ca)},
        prefix_tag="hooks-",
        queues="probe,analyze,webhooks,maintenance",
    ) as platform:
        yield platform
        crashed = [line for line in platform.worker.log_text().splitlines() if "internal_error" in line]
        assert not crashed, "a task crashed:\n" + "\n".join(crashed[:10])


@pytest.fixture(scope="session")
def local_hooks_platform(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[Stack]:
    """``hooks_platform`` with videos stored in a local directory, as ``./scripts/platform`` runs
    it: direct uploads then go through the API's own upload route instead of presigned S3 URLs."""
    root = tmp_path_factory.mktemp("local-hooks-platform")
    with platform_stack(
        root,
        storage_url=(root / "storage").as_uri(),
        settings={**HOOKS_SETTINGS, "OUTBOUND_CA_BUNDLE": str(tls_files.ca)},
        prefix_tag="local-hooks-",
        queues="probe,analyze,webhooks,maintenance",
    ) as platform:
        yield platform
        crashed = [line for line in platform.worker.log_text().splitlines() if "internal_error" in line]
        assert not crashed, "a task crashed:\n" + "\n".join(crashed[:10])


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    """A plain-HTTP receiver on 127.0.0.1 (allowed: the platform sets WEBHOOK_ALLOW_PRIVATE)."""
    with running_receiver() as running:
        yield running


@pytest.fixture(scope="session")
def https_files(tls_files: TlsFiles) -> Iterator[Receiver]:
    """An HTTPS server for ``localhost`` with a certificate the platform trusts."""
    with running_receiver(cert=tls_files.cert, key=tls_files.key, host="localhost") as running:
        yield running


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> FaceVideo:
    """1 s, 320×240, one face: one frame analysed at the platform's 1 frame per second."""
    return make_face_video(
        tmp_path_factory.mktemp("hooks-media") / "short.mp4", seconds=1.0, width=320, height=240, fps=10.0
    )


def upload_sources(platform: Stack, clip: Path, keys: list[str]) -> list[str]:
    """Puts ``clip`` at each key of the source bucket; returns their s3:// URIs."""
    data = clip.read_bytes()
    client = platform.s3()
    for key in keys:
        client.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=data)
    return [f"s3://{SOURCE_BUCKET}/{key}" for key in keys]
