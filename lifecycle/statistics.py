"""A job's statistics as a document, and the storage keys of every output beside its video.

The document is what ``statistics.json`` beside the video holds and ``GET
/v1/jobs/{id}/statistics`` answers.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.drift import FEATURES
from core.models import Explanation, JobStatistics

__all__ = ["artifact_keys", "statistics_document"]


def statistics_document(row: JobStatistics) -> dict[str, Any]:
    inputs: dict[str, Any] = {f.name: getattr(row, f.name) for f in FEATURES if f.side == "input"}
    inputs.update({"frames_sampled": row.frames_sampled, "faces": row.faces})
    details = dict(row.details or {})
    return {
        "job_id": str(row.job_id),
        "finished_at": row.finished_at.isoformat(),
        "input": inputs,
        "output": {"score": row.score, "verdict": row.verdict, "no_face": row.no_face},
        "spread": details.get("spread", {}),
        "segments": details.get("segments", []),
    }


def artifact_keys(session: Session, *, job_id: uuid.UUID) -> list[str]:
    """Every object the job's heatmaps and statistics put in storage (deleted with the job)."""
    keys: list[str] = []
    for heatmap_key, crop_key in session.execute(
        select(Explanation.heatmap_key, Explanation.crop_key).where(Explanation.job_id == job_id)
    ):
        keys += [heatmap_key, crop_key]
    statistics_key = session.scalar(select(JobStatistics.storage_key).where(JobStatistics.job_id == job_id))
    if statistics_key:
        keys.append(statistics_key)
    return keys
