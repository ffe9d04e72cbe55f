"""Segments of a canceled job are marked canceled, not left pending or running.

Revision ID: 0004_segment_canceled
Revises: 0003_monitoring
Create Date: 2026-12-01 14:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004_segment_canceled"
down_revision: str | None = "0003_monitoring"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_segments_status"), "segments", type_="check")
    op.create_check_constraint(
        op.f("ck_segments_status"), "segments", "status IN ('pending', 'running', 'done', 'canceled')"
    )
    # Jobs canceled before this revision left their unfinished segments behind.
    op.execute(
        "UPDATE segments SET status = 'canceled', finished_at = now() "
        "WHERE status IN ('pending', 'running') "
        "AND job_id IN (SELECT id FROM jobs WHERE status = 'canceled')"
    )


def downgrade() -> None:
    op.execute("UPDATE segments SET status = 'pending' WHERE status = 'canceled'")
    op.drop_constraint(op.f("ck_segments_status"), "segments", type_="check")
    op.create_check_constraint(
        op.f("ck_segments_status"), "segments", "status IN ('pending', 'running', 'done')"
    )
