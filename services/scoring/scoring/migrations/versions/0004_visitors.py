"""visitors: tracking ids not joined to a lead yet, their activities, and the lead they join

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import leadrelay.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "visitors",
        sa.Column("visitor", sa.String(length=220), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=True),
        sa.Column("linked_at", leadrelay.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", leadrelay.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("visitor", name=op.f("pk_visitors")),
    )
    with op.batch_alter_table("visitors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visitors_lead_id"), ["lead_id"], unique=False)
    op.create_table(
        "visitor_activities",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("visitor", sa.String(length=220), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", leadrelay.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visitor_activities")),
    )
    with op.batch_alter_table("visitor_activities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visitor_activities_visitor"), ["visitor"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("visitor_activities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visitor_activities_visitor"))
    op.drop_table("visitor_activities")
    with op.batch_alter_table("visitors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visitors_lead_id"))
    op.drop_table("visitors")
