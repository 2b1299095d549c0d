"""Every query scoring makes: the batch prefetch of the consumer and the reads of the API."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from leadrelay.auth import Principal, scoped
from leadrelay.events import ActivitySummary, ActivityType, LeadStatus
from scoring.models import Activity, Lead, Visitor, VisitorActivity

# Per lead: (occurred_at, order, activity); order keeps the database's id order.
History = dict[str, list[tuple[datetime, int, ActivitySummary]]]


async def leads_by_id(session: AsyncSession, lead_ids: list[str], lock: bool = False) -> dict[str, Lead]:
    """The leads; with ``lock``, locked (FOR UPDATE on PostgreSQL, in id order) until the commit:
    a visitor's activity is credited to its lead from the visitor's partition, so two consumers
    may write one lead and must take turns."""
    query = select(Lead).where(Lead.lead_id.in_(lead_ids))
    if lock:
        query = query.order_by(Lead.lead_id).with_for_update()
    rows = await session.execute(query)
    return {lead.lead_id: lead for lead in rows.scalars()}


async def lock_visitors(session: AsyncSession, keys: list[str], now: datetime) -> dict[str, Visitor]:
    """The visitors, created if new, locked until the commit (FOR UPDATE on PostgreSQL, in key
    order, so two batches lock them in one order; SQLite has one writer at a time)."""
    if not keys:
        return {}
    postgres = session.get_bind().dialect.name == "postgresql"
    insert_ = pg_insert if postgres else sqlite_insert
    await session.execute(
        insert_(Visitor)
        .values([{"visitor": key, "created_at": now} for key in sorted(set(keys))])
        .on_conflict_do_nothing(index_elements=["visitor"])
    )
    rows = await session.execute(
        select(Visitor)
        .where(Visitor.visitor.in_(keys))
        .order_by(Visitor.visitor)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {v.visitor: v for v in rows.scalars()}


async def visitor_activities(session: AsyncSession, keys: list[str]) -> dict[str, list[VisitorActivity]]:
    """The activities kept for these (not yet joined) visitors, oldest first."""
    out: dict[str, list[VisitorActivity]] = defaultdict(list)
    if keys:
        rows = await session.execute(
            select(VisitorActivity)
            .where(VisitorActivity.visitor.in_(keys))
            .order_by(VisitorActivity.occurred_at, VisitorActivity.id)
        )
        for a in rows.scalars():
            out[a.visitor].append(a)
    return out


async def visitors_of(session: AsyncSession, lead_id: str) -> list[Visitor]:
    rows = await session.execute(select(Visitor).where(Visitor.lead_id == lead_id).order_by(Visitor.visitor))
    return list(rows.scalars())


async def recent_history(session: AsyncSession, lead_ids: list[str], limit: int) -> History:
    """The last ``limit`` activities of each lead, in one query."""
    history: History = defaultdict(list)
    if not lead_ids:
        return history
    ranked = (
        select(
            Activity,
            func.row_number()
            .over(partition_by=Activity.lead_id, order_by=(Activity.occurred_at.desc(), Activity.id.desc()))
            .label("rank"),
        )
        .where(Activity.lead_id.in_(lead_ids))
        .subquery()
    )
    recent = aliased(Activity, ranked)
    rows = await session.execute(select(recent).where(ranked.c.rank <= limit))
    for a in rows.scalars():
        summary = ActivitySummary(type=ActivityType(a.type), occurred_at=a.occurred_at, url=a.url, detail=a.detail)
        history[a.lead_id].append((a.occurred_at, a.id, summary))
    return history


async def lead(session: AsyncSession, lead_id: str) -> Lead | None:
    return await session.get(Lead, lead_id)


async def hot_list(session: AsyncSession, who: Principal, status: LeadStatus | None, limit: int) -> list[Lead]:
    """The leads ``who`` may see, by score, highest first."""
    query = (
        scoped(select(Lead), who, Lead.rep_id, Lead.territory).order_by(Lead.score.desc(), Lead.lead_id).limit(limit)
    )
    if status is not None:
        query = query.where(Lead.status == status.value)
    return list((await session.execute(query)).scalars())
