"""Every query intake runs: its spool (the service's outbox table, see ``intake.spool``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession


async def spool_holds_events(session: AsyncSession, spool: Table) -> bool:
    """Whether any event waits in the spool."""
    return await session.scalar(select(spool.c.id).limit(1)) is not None


async def spool_depth(session: AsyncSession, spool: Table) -> tuple[int, datetime | None]:
    """How many events wait in the spool, and when the oldest was put there."""
    depth = int(await session.scalar(select(func.count()).select_from(spool)) or 0)
    oldest: datetime | None = await session.scalar(select(spool.c.created_at).order_by(spool.c.id).limit(1))
    return depth, oldest
