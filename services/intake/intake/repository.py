"""Every query intake makes: the reads of its spool (the outbox table of its schema, ``intake.models``).

The spool's writes are the unit of work's (``leadrelay.unit_of_work``: an event emitted there is an
outbox row); what is read here is whether an event waits, and the depth and age for the metrics.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession


async def an_event_waits(session: AsyncSession, spool: Table) -> bool:
    """Whether any event waits in the spool."""
    return await session.scalar(select(spool.c.id).limit(1)) is not None


async def depth_and_oldest(session: AsyncSession, spool: Table) -> tuple[int, datetime | None]:
    """How many events wait, and when the oldest of them was written (None: the spool is empty)."""
    depth = int(await session.scalar(select(func.count()).select_from(spool)) or 0)
    oldest: datetime | None = await session.scalar(select(spool.c.created_at).order_by(spool.c.id).limit(1))
    return depth, oldest
