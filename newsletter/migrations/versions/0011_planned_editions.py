"""editions.send_at and planned_by: an approved edition planned to go out later

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import newsletter.core.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.add_column(
            sa.Column("send_at", newsletter.core.models.UtcDateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("planned_by", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.drop_column("planned_by")
        batch.drop_column("send_at")
