"""Every query routing makes: the batch prefetch of the consumer and the reads of the API."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from leadrelay.auth import Principal, scoped
from routing.domain import ACTIVE
from routing.models import Assignment, Cursor, RepAvailability


async def assignments_of(session: AsyncSession, lead_ids: list[str]) -> dict[str, list[Assignment]]:
    out: dict[str, list[Assignment]] = defaultdict(list)
    if lead_ids:
        for a in (await session.execute(select(Assignment).where(Assignment.lead_id.in_(lead_ids)))).scalars():
            out[a.lead_id].append(a)
    return out


async def cursors(session: AsyncSession) -> dict[str, Cursor]:
    return {c.territory: c for c in (await session.execute(select(Cursor))).scalars()}


async def open_loads(session: AsyncSession) -> dict[str, int]:
    """Active assignments per rep."""
    rows = await session.execute(
        select(Assignment.rep_id, func.count()).where(Assignment.status == ACTIVE).group_by(Assignment.rep_id)
    )
    return {rep: int(n) for rep, n in rows.all()}


async def latest_assignment(session: AsyncSession, lead_id: str) -> Assignment | None:
    query = select(Assignment).where(Assignment.lead_id == lead_id).order_by(Assignment.cycle.desc()).limit(1)
    return (await session.execute(query)).scalar_one_or_none()


async def suppressions(session: AsyncSession, who: Principal, limit: int) -> list[tuple[str, str, datetime]]:
    """Leads sales is working that ``who`` may see, oldest assignment first."""
    query = scoped(
        select(Assignment.lead_id, Assignment.rep_id, Assignment.assigned_at).where(Assignment.status == ACTIVE),
        who,
        Assignment.rep_id,
        Assignment.territory,
    )
    rows = await session.execute(query.order_by(Assignment.assigned_at).limit(limit))
    return [(lid, rep, at) for lid, rep, at in rows.all()]


async def availability_rows(session: AsyncSession) -> dict[str, RepAvailability]:
    """Every rep's stored availability (reps never set have none: the rules' default applies)."""
    return {row.rep_id: row for row in (await session.execute(select(RepAvailability))).scalars()}


async def store_availability(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert or replace one rep's availability (``values`` holds every column)."""
    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert_(RepAvailability).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["rep_id"], set_={k: v for k, v in values.items() if k != "rep_id"})
    )
