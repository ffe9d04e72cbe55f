"""The worker's monitoring outputs, called as plain functions against real PostgreSQL, Redis and a
storage directory: finalize ranks the job's top-k heatmaps and stores its statistics (with
statistics.json beside the video); a segment whose job ended while it ran leaves no images."""

from __future__ import annotations

import dataclasses
import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.config import Settings, load_settings
from core.keys import create_api_key
from core.models import Explanation, Job, JobStatistics, Segment, Video
from core.storage import video_path
from lifecycle.jobs import cancel_job
from pipeline.analyzer import Analyzer
from pipeline.media_source import MediaSource
from pipeline.types import AnalysisConfig, SegmentPlan, SegmentResult
from tests.utils.media import FaceVideo
from tests.utils.platform import REDIS_URL, clear_broker_keys, fresh_database
from worker.analyze import analyze_segment
from worker.probe import probe_job
from worker.runtime import WorkerContext, analysis_config, build_context

pytestmark = pytest.mark.integration

TOP_K = 2


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, random_checkpoint: Path) -> Iterator[Settings]:
    prefix = f"dfs-test-outputs-{secrets.token_hex(4)}:"
    with fresh_database() as url:
        yield load_settings(
            environment="test",
            database_url=url,
            broker_url=REDIS_URL,
            broker_key_prefix=prefix,
            storage_url=tmp_path_factory.mktemp("storage").as_uri(),
            work_dir=tmp_path_factory.mktemp("work"),
            model_path=random_checkpoint,
            device="cpu",
            default_segment_seconds=1.0,
            default_sample_fps=3.0,
            explain_top_k=TOP_K,
        )
    clear_broker_keys(prefix)


@pytest.fixture(scope="module")
def analyzer(settings: Settings) -> Analyzer:
    return Analyzer(model_path=settings.model_path, device="cpu", config=analysis_config(settings))


def _context(settings: Settings, analyzer: Analyzer, *, wrap: Any = None) -> WorkerContext:
    ctx = build_context(settings, hostname="outputs@test")

    def analyzer_for(options: dict[str, Any]) -> Any:
        view = Analyzer.__new__(Analyzer)
        view.__dict__.update(analyzer.__dict__)
        view.config = analysis_config(settings, options)
        return wrap(view) if wrap is not None else view

    return dataclasses.replace(ctx, analyzer_for=analyzer_for)


def _new_job(settings: Settings, video: FaceVideo) -> tuple[uuid.UUID, uuid.UUID, Path]:
    ctx = build_context(settings, hostname="setup")
    with ctx.session() as session:
        tenant_id = create_api_key(session, tenant_name=f"t-{secrets.token_hex(4)}").tenant.id
        video_id = uuid.uuid4()
        key = video_path(tenant_id=tenant_id, video_id=video_id)
        ctx.storage.put_bytes(key, video.path.read_bytes())
        job = Job(
            tenant_id=tenant_id,
            video=Video(id=video_id, tenant_id=tenant_id, storage_key=key, owned=True, filename="clip.mp4"),
            status="queued",
            options={"segment_seconds": 1.0, "sample_fps": 3.0},
        )
        session.add(job)
        session.commit()
        return job.id, tenant_id, settings.storage_dir / "videos" / str(tenant_id) / str(video_id)


def test_finalize_ranks_top_k_and_stores_statistics(
    settings: Settings, analyzer: Analyzer, face_clip: FaceVideo
) -> None:
    job_id, _, video_dir = _new_job(settings, face_clip)
    ctx = _context(settings, analyzer)
    assert probe_job(ctx, job_id=job_id) == "planned"
    results = [analyze_segment(ctx, job_id=job_id, segment_index=i) for i in (0, 1)]
    assert results == ["stored", "finalized"]

    with ctx.session() as session:
        job = session.get_one(Job, job_id)
        explanations = list(session.scalars(select(Explanation).where(Explanation.job_id == job_id)))
        stats = session.get_one(JobStatistics, job_id)
        segments = list(session.scalars(select(Segment).where(Segment.job_id == job_id)))
    assert job.status == "succeeded"
    # Each segment explained its own top k; the job's top k overall carry ranks 1..k.
    assert len(explanations) == 2 * TOP_K
    ranked = sorted((e for e in explanations if e.rank is not None), key=lambda e: e.rank or 0)
    assert [e.rank for e in ranked] == list(range(1, TOP_K + 1))
    assert [e.score for e in ranked] == sorted((e.score for e in explanations), reverse=True)[:TOP_K]
    for explanation in explanations:
        assert (settings.storage_dir / explanation.heatmap_key).is_file()
        assert (settings.storage_dir / explanation.crop_key).is_file()
    assert all(segment.quality and segment.quality["frames"] == 3 for segment in segments)

    assert stats.verdict == job.verdict and stats.score == pytest.approx(job.score)
    assert stats.frames_sampled == 6 and stats.faces == 6 and stats.no_face is False
    assert (stats.width, stats.height, stats.codec) == (480, 270, "h264")
    document = json.loads((video_dir / "statistics.json").read_text())
    assert stats.storage_key is not None and stats.storage_key.endswith("statistics.json")
    assert document["input"]["brightness_pct"] == pytest.approx(stats.brightness_pct)
    assert document["output"] == {"score": stats.score, "verdict": stats.verdict, "no_face": False}


def test_a_segment_of_a_job_canceled_meanwhile_leaves_no_images(
    settings: Settings, analyzer: Analyzer, face_clip: FaceVideo
) -> None:
    job_id, _, video_dir = _new_job(settings, face_clip)

    class CancelsWhileRunning:
        """The real analysis; the client cancels the job before its results are stored."""

        def __init__(self, inner: Analyzer) -> None:
            self.inner = inner
            self.config = inner.config

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def analyze_segment(self, source: MediaSource, plan: SegmentPlan) -> SegmentResult:
            result = self.inner.analyze_segment(source, plan)
            with ctx.session() as session, session.begin():
                cancel_job(session, job_id=job_id)
            return result

    ctx = _context(settings, analyzer, wrap=CancelsWhileRunning)
    assert probe_job(ctx, job_id=job_id) == "planned"
    assert analyze_segment(ctx, job_id=job_id, segment_index=0) == "dropped"
    with ctx.session() as session:
        assert session.get_one(Job, job_id).status == "canceled"
        assert not list(session.scalars(select(Explanation).where(Explanation.job_id == job_id)))
        # The segment that ran and the one never started both end canceled, not running/pending.
        statuses = session.scalars(
            select(Segment.status).where(Segment.job_id == job_id).order_by(Segment.segment_index)
        ).all()
        assert list(statuses) == ["canceled", "canceled"]
    assert sorted(p.name for p in video_dir.rglob("*") if p.is_file()) == ["source"]


def test_analysis_config_carries_the_top_k(settings: Settings) -> None:
    assert analysis_config(settings).explain_top_k == TOP_K
    assert AnalysisConfig().explain_top_k == 0  # the CLI explains only for its report
