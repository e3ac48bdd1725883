"""staff roles, one-time invitation links and the login history

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 09:00:00.000000

Touches only the staff tables of 0005.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import newsletter.core.models

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The accounts made so far came from `newsletter staff add`: they stay in charge.
    with op.batch_alter_table("staff_users") as batch:
        batch.add_column(
            sa.Column("role", sa.String(length=20), server_default="admin", nullable=False)
        )
        batch.create_check_constraint(op.f("ck_staff_users_role"), "role IN ('admin', 'editor')")
    op.create_table(
        "staff_invitations",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", newsletter.core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", newsletter.core.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["staff_users.id"],
            name=op.f("fk_staff_invitations_user_id_staff_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_staff_invitations")),
    )
    op.create_table(
        "staff_logins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", newsletter.core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_logins")),
    )
    op.create_index("ix_staff_logins_at", "staff_logins", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_staff_logins_at", table_name="staff_logins")
    op.drop_table("staff_logins")
    op.drop_table("staff_invitations")
    with op.batch_alter_table("staff_users") as batch:
        batch.drop_constraint(op.f("ck_staff_users_role"), type_="check")
        batch.drop_column("role")
