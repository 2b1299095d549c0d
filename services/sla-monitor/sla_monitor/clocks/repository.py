"""Every query of the SLA clocks: the batch's clocks and feedback seen, the timer's claims (breaches
and warnings), and the API's reads (a lead's clocks and alerts, the alert feed, attainment)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from leadrelay.auth import Principal, scoped
from sla_monitor.clocks.domain import RUNNING, Seen
from sla_monitor.models import Alert, FeedbackSeen, SlaClock


async def clocks_of(session: AsyncSession, lead_ids: list[str]) -> dict[str, list[SlaClock]]:
    out: dict[str, list[SlaClock]] = defaultdict(list)
    for clock in (await session.execute(select(SlaClock).where(SlaClock.lead_id.in_(lead_ids)))).scalars():
        out[clock.lead_id].append(clock)
    return out


async def feedback_seen(session: AsyncSession, lead_ids: list[str]) -> dict[str, list[Seen]]:
    out: dict[str, list[Seen]] = defaultdict(list)
    rows = await session.execute(
        select(FeedbackSeen.lead_id, FeedbackSeen.kind, FeedbackSeen.at, FeedbackSeen.detail).where(
            FeedbackSeen.lead_id.in_(lead_ids)
        )
    )
    for lead_id, kind, at, detail in rows.all():
        out[lead_id].append((kind, at, detail))
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


async def claim_warnings(session: AsyncSession, now: datetime, limit: int) -> list[SlaClock]:
    """Running clocks whose warning time has come, not warned yet and not past their deadline, locked
    for this transaction (rows another replica holds are skipped, so each warning fires once)."""
    query = (
        select(SlaClock)
        .where(
            SlaClock.status == RUNNING,
            SlaClock.warned_at.is_(None),
            SlaClock.warn_at <= now,
            SlaClock.due_at > now,
        )
        .order_by(SlaClock.warn_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(query)).scalars())


async def lead_clocks(session: AsyncSession, lead_id: str) -> list[SlaClock]:
    query = select(SlaClock).where(SlaClock.lead_id == lead_id).order_by(SlaClock.cycle, SlaClock.id)
    return list((await session.execute(query)).scalars())


async def lead_alerts(session: AsyncSession, lead_id: str) -> list[Alert]:
    return list((await session.execute(select(Alert).where(Alert.lead_id == lead_id).order_by(Alert.id))).scalars())


async def alerts(
    session: AsyncSession, who: Principal, since: datetime | None, territory: str | None, limit: int
) -> list[Alert]:
    """The alerts ``who`` may see, newest first."""
    query = scoped(select(Alert), who, Alert.rep_id, Alert.territory)
    query = query.order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit)
    if since is not None:
        query = query.where(Alert.raised_at > since)
    if territory is not None:
        query = query.where(Alert.territory == territory)
    return list((await session.execute(query)).scalars())


async def clock_outcomes(
    session: AsyncSession, who: Principal, since: datetime | None, territory: str | None
) -> dict[tuple[str, str], int]:
    """How many of the clocks ``who`` may see are in each (name, status), started at or after ``since``."""
    c = SlaClock
    query = scoped(select(c.name, c.status, func.count()), who, c.rep_id, c.territory).group_by(c.name, c.status)
    if since is not None:
        query = query.where(c.started_at >= since)
    if territory is not None:
        query = query.where(c.territory == territory)
    return {(name, status): int(n) for name, status, n in (await session.execute(query)).all()}
