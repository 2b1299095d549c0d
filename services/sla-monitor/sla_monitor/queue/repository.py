"""Every query of the reps' queue: the batch's rows (one per lead: its latest assignment, which the
notifications read too) and the queue a rep sees."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from leadrelay.auth import Principal, scoped
from leadrelay.events import Disposition
from sla_monitor.models import QueuedLead
from sla_monitor.queue.domain import DeadlineStatus, Stage


async def queued_of(session: AsyncSession, lead_ids: list[str]) -> dict[str, QueuedLead]:
    """The leads' rows: their latest assignments (who the lead is, to whom it went, what sales did)."""
    if not lead_ids:
        return {}
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
