"""lead owner: rep and territory of the latest assignment (from leads.assigned)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:00:00.000000

Leads assigned before this revision get their owner when the scoring group, new on
leads.assigned, reads that topic from its start (as far as the topic's retention goes).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rep_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("territory", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("assigned_cycle", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_leads_rep_id"), ["rep_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_leads_territory"), ["territory"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leads_territory"))
        batch_op.drop_index(batch_op.f("ix_leads_rep_id"))
        batch_op.drop_column("assigned_cycle")
        batch_op.drop_column("territory")
        batch_op.drop_column("rep_id")
