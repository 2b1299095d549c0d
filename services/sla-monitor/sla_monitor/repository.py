"""Every query the SLA monitor makes: the batch prefetch, the timer's claim, and the API's reads."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sla_monitor.domain import RUNNING
from sla_monitor.models import Alert, FeedbackSeen, SlaClock


async def clocks_of(session: AsyncSession, lead_ids: list[str]) -> dict[str, list[SlaClock]]:
    out: dict[str, list[SlaClock]] = defaultdict(list)
    for clock in (await session.execute(select(SlaClock).where(SlaClock.lead_id.in_(lead_ids)))).scalars():
        out[clock.lead_id].append(clock)
    return out


async def feedback_seen(session: AsyncSession, lead_ids: list[str]) -> dict[str, list[tuple[str, datetime]]]:
    out: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    rows = await session.execute(
        select(FeedbackSeen.lead_id, FeedbackSeen.kind, FeedbackSeen.at).where(FeedbackSeen.lead_id.in_(lead_ids))
    )
    for lead_id, kind, at in rows.all():
        out[lead_id].append((kind, at))
    return out


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[SlaClock]:
    """Running clocks past their deadline, locked for this transaction; rows another replica
    holds are skipped, so each breach fires once."""
    query = (
        select(SlaClock)
        .where(SlaClock.status == RUNNING, SlaClock.due_at <= now)
        .order_by(SlaClock.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(query)).scalars())


async def lead_clocks(session: AsyncSession, lead_id: str) -> list[SlaClock]:
    query = select(SlaClock).where(SlaClock.lead_id == lead_id).order_by(SlaClock.cycle, SlaClock.id)
    return list((await session.execute(query)).scalars())


async def lead_alerts(session: AsyncSession, lead_id: str) -> list[Alert]:
    return list((await session.execute(select(Alert).where(Alert.lead_id == lead_id).order_by(Alert.id))).scalars())


async def alerts(session: AsyncSession, since: datetime | None, territory: str | None, limit: int) -> list[Alert]:
    """Alerts newest first."""
    query = select(Alert).order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit)
    if since is not None:
        query = query.where(Alert.raised_at > since)
    if territory is not None:
        query = query.where(Alert.territory == territory)
    return list((await session.execute(query)).scalars())
