"""Every query the SLA monitor makes: the batch prefetch, the timer's claim, and the API's reads."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from leadrelay.auth import Principal, scoped
from leadrelay.events import Disposition
from sla_monitor.domain import RUNNING
from sla_monitor.models import Alert, Delivery, FeedbackSeen, Handoff, Notification, QueuedLead, SlaClock
from sla_monitor.queue import DeadlineStatus, Stage


async def clocks_of(session: AsyncSession, lead_ids: list[str]) -> dict[str, list[SlaClock]]:
    out: dict[str, list[SlaClock]] = defaultdict(list)
    for clock in (await session.execute(select(SlaClock).where(SlaClock.lead_id.in_(lead_ids)))).scalars():
        out[clock.lead_id].append(clock)
    return out


Seen = tuple[str, datetime, str | None]  # kind (touch, disposition), when, the disposition


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


async def queued_of(session: AsyncSession, lead_ids: list[str]) -> dict[str, QueuedLead]:
    rows = await session.execute(select(QueuedLead).where(QueuedLead.lead_id.in_(lead_ids)))
    return {row.lead_id: row for row in rows.scalars()}


def _next_due() -> ColumnElement[Any]:
    """The deadline sales has to meet next: the first touch until touched (or dispositioned),
    then the disposition until one is recorded; none after that."""
    q = QueuedLead
    return case(
        (and_(q.first_touch_at.is_(None), q.disposition.is_(None)), q.first_touch_due),
        (q.disposition.is_(None), q.disposition_due),
        else_=None,
    )


async def open_queue(
    session: AsyncSession,
    who: Principal,
    now: datetime,
    stage: Stage | None,
    territory: str | None,
    deadline: DeadlineStatus | None,
    limit: int,
) -> list[QueuedLead]:
    """The open leads ``who`` may see, most urgent first: the most overdue deadline first, then
    the nearest, then those with no deadline left (accepted), oldest first."""
    q = QueuedLead
    query = scoped(select(q).where(q.open == true()), who, q.rep_id, q.territory)
    if territory is not None:
        query = query.where(q.territory == territory)
    if stage is Stage.NEW:
        query = query.where(q.first_touch_at.is_(None), q.disposition.is_(None))
    elif stage is Stage.TOUCHED:
        query = query.where(q.first_touch_at.is_not(None), q.disposition.is_(None))
    elif stage is Stage.ACCEPTED:
        query = query.where(q.disposition == Disposition.ACCEPTED.value)
    if deadline is DeadlineStatus.BREACHED:
        query = query.where(_next_due() <= now)
    elif deadline is DeadlineStatus.RUNNING:
        query = query.where(_next_due() > now)
    query = query.order_by(_next_due().is_(None), _next_due(), q.assigned_at, q.lead_id).limit(limit)
    return list((await session.execute(query)).scalars())


async def handoffs_of(session: AsyncSession, lead_ids: list[str]) -> dict[str, Handoff]:
    """The leads' latest handoffs (who the lead is, to whom it went), for the notifications about them."""
    if not lead_ids:
        return {}
    rows = await session.execute(select(Handoff).where(Handoff.lead_id.in_(lead_ids)))
    return {row.lead_id: row for row in rows.scalars()}


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


async def deliveries(
    session: AsyncSession,
    status: str | None,
    endpoint: str | None,
    lead_id: str | None,
    before: int | None,
    limit: int,
) -> list[tuple[Delivery, Notification]]:
    """The delivery log, newest first, with each delivery's notification."""
    query = (
        select(Delivery, Notification)
        .join(Notification, Delivery.notification_id == Notification.id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(Delivery.status == status)
    if endpoint is not None:
        query = query.where(Delivery.endpoint == endpoint)
    if lead_id is not None:
        query = query.where(Notification.lead_id == lead_id)
    if before is not None:
        query = query.where(Delivery.id < before)
    return [(d, n) for d, n in (await session.execute(query)).all()]


async def delivery(session: AsyncSession, delivery_id: int) -> tuple[Delivery, Notification] | None:
    row = (
        await session.execute(
            select(Delivery, Notification)
            .join(Notification, Delivery.notification_id == Notification.id)
            .where(Delivery.id == delivery_id)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])
