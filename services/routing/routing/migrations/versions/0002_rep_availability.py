"""rep availability set at run time

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import leadrelay.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rep_availability",
        sa.Column("rep_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("until", leadrelay.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("set_by", sa.String(length=100), nullable=False),
        sa.Column("set_by_role", sa.String(length=20), nullable=False),
        sa.Column("set_at", leadrelay.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rep_id", name=op.f("pk_rep_availability")),
    )


def downgrade() -> None:
    op.drop_table("rep_availability")
