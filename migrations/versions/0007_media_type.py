"""Image jobs: a job's media type (video or image) and an image job's faces.

Revision ID: 0007_media_type
Revises: 0006_inconclusive_verdict
Create Date: 2026-12-01 17:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_media_type"
down_revision: str | None = "0006_inconclusive_verdict"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every job stored before this revision analysed a video.
    op.add_column(
        "jobs",
        sa.Column("media_type", sa.String(length=8), server_default=sa.text("'video'"), nullable=False),
    )
    op.add_column("jobs", sa.Column("faces", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_check_constraint(op.f("ck_jobs_media_type"), "jobs", "media_type IN ('video', 'image')")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_jobs_media_type"), "jobs", type_="check")
    op.drop_column("jobs", "faces")
    op.drop_column("jobs", "media_type")
