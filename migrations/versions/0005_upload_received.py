"""A direct upload records what its last PUT through the API stored: the size and SHA-256.

Revision ID: 0005_upload_received
Revises: 0004_segment_canceled
Create Date: 2026-12-01 16:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_upload_received"
down_revision: str | None = "0004_segment_canceled"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("uploads", sa.Column("received_bytes", sa.BigInteger(), nullable=True))
    op.add_column("uploads", sa.Column("sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("uploads", "sha256")
    op.drop_column("uploads", "received_bytes")
