"""Every query scoring makes: the batch prefetch of the consumer and the reads of the API."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from leadrelay.auth import Principal, scoped
from leadrelay.events import ActivitySummary, ActivityType, LeadStatus
from scoring.models import Activity, Lead

# Per lead: (occurred_at, order, activity); order keeps the database's id order.
History = dict[str, list[tuple[datetime, int, ActivitySummary]]]


async def leads_by_id(session: AsyncSession, lead_ids: list[str]) -> dict[str, Lead]:
    rows = await session.execute(select(Lead).where(Lead.lead_id.in_(lead_ids)))
    return {lead.lead_id: lead for lead in rows.scalars()}


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
