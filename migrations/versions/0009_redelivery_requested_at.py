"""When a delivery's last redelivery was asked for: one request of several sent at once starts it.

Revision ID: 0009_redelivery_requested_at
Revises: 0008_no_face_reason
Create Date: 2026-12-07 12:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_redelivery_requested_at"
down_revision: str | None = "0008_no_face_reason"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhook_deliveries", sa.Column("redelivery_requested_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("webhook_deliveries", "redelivery_requested_at")
