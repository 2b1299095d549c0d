"""one projection of an assignment: the queue's row holds who the lead is for the notifications

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00.000000

The queue's rows gain the handoff's score and whole contact, which the handoffs table kept for the
notifications; the handoffs are copied into the queue and the table is dropped:

- a lead whose queue row is of the handoff's cycle gets the handoff's score and contact (and its
  qualification, if the row had none);
- a lead whose handoff is of a newer cycle than its queue row, or that has no queue row, gets a row
  of the handoff's assignment: its deadlines from that cycle's clocks (the assignment time when the
  clock is missing), open unless the disposition deadline was met (as revision 0002 decided), no
  handoff summary (the queue shows it as revision 0002's rows);
- a handoff of an older cycle than the queue row is superseded: the notifications never read it.

Downgrade writes the handoffs back from the rows that have a contact.
"""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import leadrelay.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
DT = leadrelay.db.UtcDateTime(timezone=True)

HANDOFFS = sa.table(
    "handoffs",
    sa.column("lead_id", sa.String()),
    sa.column("cycle", sa.Integer()),
    sa.column("rep_id", sa.String()),
    sa.column("territory", sa.String()),
    sa.column("qualification", sa.String()),
    sa.column("score", sa.Integer()),
    sa.column("contact", JSON),
    sa.column("assigned_at", DT),
)
QUEUE = sa.table(
    "queue",
    sa.column("lead_id", sa.String()),
    sa.column("cycle", sa.Integer()),
    sa.column("rep_id", sa.String()),
    sa.column("territory", sa.String()),
    sa.column("qualification", sa.String()),
    sa.column("assigned_at", DT),
    sa.column("first_touch_due", DT),
    sa.column("disposition_due", DT),
    sa.column("handoff", JSON),
    sa.column("score", sa.Integer()),
    sa.column("contact", JSON),
    sa.column("touches", sa.Integer()),
    sa.column("first_touch_at", DT),
    sa.column("last_touch_at", DT),
    sa.column("disposition", sa.String()),
    sa.column("disposition_at", DT),
    sa.column("open", sa.Boolean()),
)
CLOCKS = sa.table(
    "clocks",
    sa.column("lead_id", sa.String()),
    sa.column("cycle", sa.Integer()),
    sa.column("name", sa.String()),
    sa.column("due_at", DT),
    sa.column("status", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("queue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("score", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("contact", JSON, nullable=True))
    _copy_handoffs()
    op.drop_table("handoffs")


def _copy_handoffs() -> None:
    bind = op.get_bind()
    handoffs = list(bind.execute(sa.select(HANDOFFS)).mappings())
    if not handoffs:
        return
    queued = {r["lead_id"]: r["cycle"] for r in bind.execute(sa.select(QUEUE.c.lead_id, QUEUE.c.cycle)).mappings()}
    clocks: dict[tuple[str, int], dict[str, Any]] = defaultdict(dict)
    for c in bind.execute(sa.select(CLOCKS)).mappings():
        clocks[(c["lead_id"], c["cycle"])][c["name"]] = c
    for h in handoffs:
        lead_id, cycle = h["lead_id"], h["cycle"]
        have = queued.get(lead_id)
        if have is not None and have > cycle:
            continue  # the queue holds a newer assignment
        if have == cycle:
            bind.execute(
                QUEUE.update()
                .where(QUEUE.c.lead_id == lead_id)
                .values(
                    score=h["score"],
                    contact=h["contact"],
                    qualification=sa.func.coalesce(QUEUE.c.qualification, h["qualification"]),
                )
            )
            continue
        own = clocks.get((lead_id, cycle), {})
        first, disp = own.get("first_touch"), own.get("disposition")
        row = {
            "lead_id": lead_id,
            "cycle": cycle,
            "rep_id": h["rep_id"],
            "territory": h["territory"],
            "qualification": h["qualification"],
            "assigned_at": h["assigned_at"],
            "first_touch_due": first["due_at"] if first is not None else h["assigned_at"],
            "disposition_due": disp["due_at"] if disp is not None else h["assigned_at"],
            "score": h["score"],
            "contact": h["contact"],
            "touches": 0,
            "first_touch_at": None,
            "last_touch_at": None,
            "disposition": None,
            "disposition_at": None,
            "open": disp is not None and disp["status"] != "met",
        }
        if have is None:
            bind.execute(QUEUE.insert().values(**row))
        else:
            # The older cycle's summary goes with it.
            bind.execute(QUEUE.update().where(QUEUE.c.lead_id == lead_id).values(**row, handoff=None))


def downgrade() -> None:
    op.create_table(
        "handoffs",
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("rep_id", sa.String(length=100), nullable=False),
        sa.Column("territory", sa.String(length=100), nullable=False),
        sa.Column("qualification", sa.String(length=20), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("contact", JSON, nullable=False),
        sa.Column("assigned_at", DT, nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_handoffs")),
    )
    bind = op.get_bind()
    keys = ("lead_id", "cycle", "rep_id", "territory", "qualification", "score", "contact", "assigned_at")
    # Read in Python: a JSON column may hold JSON null where SQL NULL was meant.
    rows = [
        {k: r[k] for k in keys}
        for r in bind.execute(sa.select(QUEUE)).mappings()
        if r["contact"] is not None and r["score"] is not None and r["qualification"] is not None
    ]
    for i in range(0, len(rows), 500):
        op.bulk_insert(HANDOFFS, rows[i : i + 500])
    with op.batch_alter_table("queue", schema=None) as batch_op:
        batch_op.drop_column("contact")
        batch_op.drop_column("score")
