"""The inconclusive verdict, and what each job's verdict was decided with.

Jobs may end ``inconclusive`` (a score inside the checkpoint's band around its threshold). Each job
keeps the checkpoint's caveat, its inconclusive band, the aggregation and the analysis settings
used, so a finished job (and its report) reads the same after the model is replaced.

Revision ID: 0006_inconclusive_verdict
Revises: 0005_upload_received
Create Date: 2026-12-01 16:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_inconclusive_verdict"
down_revision: str | None = "0005_upload_received"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("model_caveat", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("inconclusive_low", sa.Float(), nullable=True))
    op.add_column("jobs", sa.Column("inconclusive_high", sa.Float(), nullable=True))
    op.add_column("jobs", sa.Column("aggregation", sa.String(length=16), nullable=True))
    op.add_column(
        "jobs", sa.Column("analysis_settings", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.drop_constraint(op.f("ck_jobs_verdict"), "jobs", type_="check")
    op.create_check_constraint(
        op.f("ck_jobs_verdict"),
        "jobs",
        "verdict IS NULL OR verdict IN ('fake', 'real', 'inconclusive', 'no_face')",
    )


def downgrade() -> None:
    # The older schema has no inconclusive verdict: those jobs go back to the threshold's side.
    op.execute(
        "UPDATE jobs SET verdict = CASE WHEN score >= threshold THEN 'fake' ELSE 'real' END "
        "WHERE verdict = 'inconclusive'"
    )
    op.drop_constraint(op.f("ck_jobs_verdict"), "jobs", type_="check")
    op.create_check_constraint(
        op.f("ck_jobs_verdict"), "jobs", "verdict IS NULL OR verdict IN ('fake', 'real', 'no_face')"
    )
    op.drop_column("jobs", "analysis_settings")
    op.drop_column("jobs", "aggregation")
    op.drop_column("jobs", "inconclusive_high")
    op.drop_column("jobs", "inconclusive_low")
    op.drop_column("jobs", "model_caveat")
