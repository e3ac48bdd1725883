"""outbox: one index for claims, counts and leases; none on claim and sent_at

Every outcome of a send changes a row's claim and sent_at; each index on them cost a
fifth of an outcome's commit. Their queries now go through the (edition, state, id)
index: leases by edition and state, the hourly cap by the editions that can have sent
in the last hour. With id in the index a claim reads its rows in order and stops at the
limit on PostgreSQL too, instead of walking every row already sent.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 18:20:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain index statements: no table copy, even on SQLite.
    op.create_index(
        "ix_outbox_edition_state_id", "outbox", ["edition_id", "state", "id"], unique=False
    )
    op.drop_index("ix_outbox_edition_state", table_name="outbox")
    op.drop_index("ix_outbox_claim", table_name="outbox")
    op.drop_index("ix_outbox_sent_at", table_name="outbox")


def downgrade() -> None:
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"], unique=False)
    op.create_index("ix_outbox_claim", "outbox", ["claim"], unique=False)
    op.create_index("ix_outbox_edition_state", "outbox", ["edition_id", "state"], unique=False)
    op.drop_index("ix_outbox_edition_state_id", table_name="outbox")
