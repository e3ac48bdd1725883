"""probes: one mail to a subscriber a bounce named by address only

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import newsletter.core.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "probes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "requested_at", newsletter.core.models.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("sent_at", newsletter.core.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_reply", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('due', 'sent', 'bounced', 'dropped')", name=op.f("ck_probes_state")
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_probes_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probes")),
    )
    op.create_index(op.f("ix_probes_subscriber_id"), "probes", ["subscriber_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_probes_subscriber_id"), table_name="probes")
    op.drop_table("probes")
