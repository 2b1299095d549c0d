"""who logged each touch and disposition (the audit trail)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("touches", "dispositions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("actor_kind", sa.String(length=10), nullable=True))
            batch_op.add_column(sa.Column("actor_id", sa.String(length=100), nullable=True))
            batch_op.add_column(sa.Column("actor_role", sa.String(length=20), nullable=True))


def downgrade() -> None:
    for table in ("touches", "dispositions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("actor_role")
            batch_op.drop_column("actor_id")
            batch_op.drop_column("actor_kind")
