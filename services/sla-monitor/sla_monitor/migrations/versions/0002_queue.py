"""the reps' queue (GET /v1/me/leads) and the disposition seen with each feedback

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:00:00.000000

Leads assigned before this revision are put in the queue from their clocks when sales has
not given a disposition yet (those are the leads someone still has to act on); their
handoff summary and qualification are unknown here and stay empty.
"""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import leadrelay.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "queue",
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("rep_id", sa.String(length=100), nullable=False),
        sa.Column("territory", sa.String(length=100), nullable=False),
        sa.Column("qualification", sa.String(length=20), nullable=True),
        sa.Column("assigned_at", leadrelay.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("first_touch_due", leadrelay.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("disposition_due", leadrelay.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "handoff", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("touches", sa.Integer(), nullable=False),
        sa.Column("first_touch_at", leadrelay.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_touch_at", leadrelay.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("disposition", sa.String(length=20), nullable=True),
        sa.Column("disposition_at", leadrelay.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_queue")),
    )
    with op.batch_alter_table("queue", schema=None) as batch_op:
        batch_op.create_index("ix_queue_open_rep", ["open", "rep_id"], unique=False)
        batch_op.create_index("ix_queue_open_territory", ["open", "territory"], unique=False)
    with op.batch_alter_table("feedback_seen", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail", sa.String(length=20), nullable=True))
    _backfill()


def _backfill() -> None:
    dt = leadrelay.db.UtcDateTime(timezone=True)
    clocks = sa.table(
        "clocks",
        sa.column("lead_id", sa.String()),
        sa.column("cycle", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("rep_id", sa.String()),
        sa.column("territory", sa.String()),
        sa.column("started_at", dt),
        sa.column("due_at", dt),
        sa.column("status", sa.String()),
        sa.column("stopped_at", dt),
    )
    queue = sa.table(
        "queue",
        sa.column("lead_id", sa.String()),
        sa.column("cycle", sa.Integer()),
        sa.column("rep_id", sa.String()),
        sa.column("territory", sa.String()),
        sa.column("assigned_at", dt),
        sa.column("first_touch_due", dt),
        sa.column("disposition_due", dt),
        sa.column("touches", sa.Integer()),
        sa.column("first_touch_at", dt),
        sa.column("open", sa.Boolean()),
    )
    by_lead: dict[str, dict[int, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for row in op.get_bind().execute(sa.select(clocks)).mappings():
        by_lead[row["lead_id"]][row["cycle"]][row["name"]] = row
    rows = []
    for lead_id, cycles in by_lead.items():
        latest = cycles[max(cycles)]
        first, disp = latest.get("first_touch"), latest.get("disposition")
        if first is None or disp is None or disp["status"] == "met":
            continue  # a disposition was given (accepted or handed back: not known here)
        touched = first["stopped_at"] if first["status"] == "met" else None
        rows.append(
            {
                "lead_id": lead_id,
                "cycle": first["cycle"],
                "rep_id": first["rep_id"],
                "territory": first["territory"],
                "assigned_at": first["started_at"],
                "first_touch_due": first["due_at"],
                "disposition_due": disp["due_at"],
                "touches": 1 if touched else 0,
                "first_touch_at": touched,
                "open": True,
            }
        )
    for i in range(0, len(rows), 500):
        op.bulk_insert(queue, rows[i : i + 500])


def downgrade() -> None:
    with op.batch_alter_table("feedback_seen", schema=None) as batch_op:
        batch_op.drop_column("detail")
    with op.batch_alter_table("queue", schema=None) as batch_op:
        batch_op.drop_index("ix_queue_open_territory")
        batch_op.drop_index("ix_queue_open_rep")
    op.drop_table("queue")
