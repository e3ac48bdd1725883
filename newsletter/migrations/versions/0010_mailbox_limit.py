"""consent_events.mailbox_hash: the mail limit counts per mailbox, +tags and all

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consent_events") as batch:
        batch.add_column(sa.Column("mailbox_hash", sa.String(length=64), nullable=True))
        batch.create_index(
            "ix_consent_events_mailbox_hash", ["mailbox_hash", "created_at"], unique=False
        )
    # A mailbox's hash is its address's hash when the address has no +tag, as nearly all
    # have: so the requests of the last day keep counting (tagged ones no longer do).
    op.execute(
        "UPDATE consent_events SET mailbox_hash = subject_hash"
        " WHERE event IN ('subscribe_requested', 'address_change_requested')"
    )


def downgrade() -> None:
    with op.batch_alter_table("consent_events") as batch:
        batch.drop_index("ix_consent_events_mailbox_hash")
        batch.drop_column("mailbox_hash")
