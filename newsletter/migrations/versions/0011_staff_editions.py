"""editions.send_at and planned_by (a planned send), editions.kind (digest or
announcement); edition_items (hand-written items)

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
        batch.add_column(
            sa.Column("kind", sa.String(length=20), server_default="digest", nullable=False)
        )
        batch.create_check_constraint(
            op.f("ck_editions_kind"), "kind IN ('digest', 'announcement')"
        )
    op.create_table(
        "edition_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("link", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["edition_id"],
            ["editions.id"],
            name=op.f("fk_edition_items_edition_id_editions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edition_items")),
    )
    op.create_index(
        op.f("ix_edition_items_edition_id"), "edition_items", ["edition_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_edition_items_edition_id"), table_name="edition_items")
    op.drop_table("edition_items")
    with op.batch_alter_table("editions") as batch:
        batch.drop_constraint(op.f("ck_editions_kind"), type_="check")
        batch.drop_column("kind")
        batch.drop_column("planned_by")
        batch.drop_column("send_at")
