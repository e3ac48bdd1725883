"""the mail queue: single mails (sign-up confirmations) stored until sent

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 11:40:00.000000

A new table of its own (newsletter/mail/queue.py); touches nothing else.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import newsletter.core.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_queue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("extra_headers", sa.JSON(), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.Column("envelope_from", sa.String(length=320), nullable=True),
        sa.Column("queued_at", newsletter.core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("due_at", newsletter.core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_queue")),
    )
    op.create_index("ix_mail_queue_due_at", "mail_queue", ["due_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_mail_queue_due_at", table_name="mail_queue")
    op.drop_table("mail_queue")
