"""The inbox: the ids of the events a service has handled, so a redelivered event changes nothing.

Every consumer claims its batch's ids here in the same transaction as the
state the events change (see ``leadrelay.worker``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from leadrelay.db import UtcDateTime


class InboxMixin:
    """Processed event ids: a redelivered event finds its id here and changes nothing."""

    __tablename__ = "inbox"
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime())


async def claim(session: AsyncSession, inbox: Table, records: list[tuple[str, str]], now: datetime) -> set[str]:
    """Write the inbox rows of ``records`` (event id, topic) that are not there yet, in the
    caller's transaction, and return the ids that were new: the events to handle. One round
    trip instead of a lookup and an insert; a concurrent consumer claiming the same id waits
    for the other's commit and then finds it taken."""
    unique: dict[str, str] = {}
    for event_id, topic in records:
        unique.setdefault(event_id, topic)
    if not unique:
        return set()
    postgres = session.get_bind().dialect.name == "postgresql"
    insert_ = pg_insert if postgres else sqlite_insert
    stmt = (
        insert_(inbox)
        # In id order, so that two transactions claiming overlapping ids lock them in one order.
        .values([{"event_id": eid, "topic": unique[eid], "processed_at": now} for eid in sorted(unique)])
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(inbox.c.event_id)
    )
    return set((await session.execute(stmt)).scalars())


def inbox_table(metadata_tables: dict[str, Table], schema: str) -> Table:
    table = metadata_tables.get("inbox")
    if table is None:
        raise ValueError(f"{schema}: its models need an inbox table (InboxMixin)")
    return table
