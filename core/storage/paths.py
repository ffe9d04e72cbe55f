"""Where every object the service writes lives: its storage path (the object key), derived from
ids so that a retry overwrites its object.

A video and what the worker keeps beside it share one folder: ``videos/<tenant>/<video>/``.
"""

from __future__ import annotations

import uuid

__all__ = ["artifact_path", "explanation_path", "statistics_path", "video_path"]


def video_path(*, tenant_id: uuid.UUID, video_id: uuid.UUID) -> str:
    """The uploaded video itself."""
    return artifact_path(tenant_id=tenant_id, video_id=video_id, name="source")


def artifact_path(*, tenant_id: uuid.UUID, video_id: uuid.UUID, name: str) -> str:
    """An object beside the video (``name`` may hold folders)."""
    return f"videos/{tenant_id}/{video_id}/{name}"


def explanation_path(
    *, tenant_id: uuid.UUID, video_id: uuid.UUID, frame_index: int, face: int, kind: str
) -> str:
    """One explained face's image: ``kind`` is ``heatmap`` or ``crop``."""
    name = f"explanations/frame-{frame_index:07d}-face-{face}.{kind}.jpg"
    return artifact_path(tenant_id=tenant_id, video_id=video_id, name=name)


def statistics_path(*, tenant_id: uuid.UUID, video_id: uuid.UUID) -> str:
    """The job's input and output statistics as JSON (the database row is the source of truth)."""
    return artifact_path(tenant_id=tenant_id, video_id=video_id, name="statistics.json")
