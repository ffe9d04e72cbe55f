"""Monitoring: job statistics, Grad-CAM explanations, segment statistics, stored health checks.

Per-job input and output statistics (drift), per-segment input statistics, and the stored calls of
GET /healthcheck/.

Revision ID: 0003_monitoring
Revises: 0002_webhooks_batches
Create Date: 2026-11-21 15:24:11.130432
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_monitoring"
down_revision: str | None = "0002_webhooks_batches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "health_checks",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("checks", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "status IN ('healthy', 'degraded', 'unhealthy')", name=op.f("ck_health_checks_status")
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_health_checks_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_checks")),
    )
    op.create_index(
        "ix_health_checks_checked_at", "health_checks", [sa.literal_column("checked_at DESC")], unique=False
    )
    op.create_table(
        "explanations",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("segment_index", sa.Integer(), nullable=False),
        sa.Column("frame_index", sa.Integer(), nullable=False),
        sa.Column("face", sa.SmallInteger(), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("box", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("heatmap_key", sa.String(length=1024), nullable=False),
        sa.Column("crop_key", sa.String(length=1024), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_explanations_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_explanations")),
        sa.UniqueConstraint(
            "job_id", "frame_index", "face", name=op.f("uq_explanations_job_id_frame_index_face")
        ),
    )
    op.create_index("ix_explanations_job_rank", "explanations", ["job_id", "rank"], unique=False)
    op.create_table(
        "job_statistics",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("frames_sampled", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("faces", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("brightness_pct", sa.Float(), nullable=True),
        sa.Column("histogram_mean", sa.Float(), nullable=True),
        sa.Column("histogram_std", sa.Float(), nullable=True),
        sa.Column("histogram_variance", sa.Float(), nullable=True),
        sa.Column("sharpness", sa.Float(), nullable=True),
        sa.Column("face_sharpness", sa.Float(), nullable=True),
        sa.Column("face_size_px", sa.Float(), nullable=True),
        sa.Column("face_size_ratio", sa.Float(), nullable=True),
        sa.Column("faces_per_frame", sa.Float(), nullable=True),
        sa.Column("face_frame_ratio", sa.Float(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("fps", sa.Float(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("codec", sa.String(length=64), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("no_face", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("storage_key", sa.String(length=1024), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_statistics_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_job_statistics_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_statistics")),
    )
    op.create_index("ix_job_statistics_finished_at", "job_statistics", ["finished_at"], unique=False)
    op.create_index(
        "ix_job_statistics_tenant_finished_at", "job_statistics", ["tenant_id", "finished_at"], unique=False
    )
    op.add_column("segments", sa.Column("quality", postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column("segments", "quality")
    op.drop_index("ix_job_statistics_tenant_finished_at", table_name="job_statistics")
    op.drop_index("ix_job_statistics_finished_at", table_name="job_statistics")
    op.drop_table("job_statistics")
    op.drop_index("ix_explanations_job_rank", table_name="explanations")
    op.drop_table("explanations")
    op.drop_index("ix_health_checks_checked_at", table_name="health_checks")
    op.drop_table("health_checks")
