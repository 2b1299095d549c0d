"""Every query feedback makes: the batch prefetch of the consumer and the reads of the API."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from feedback.domain import REVIEWED, LeadOutcome
from feedback.models import DispositionRow, HandedOver, Touch
from leadrelay.auth import Principal, scoped


async def handed_over_of(session: AsyncSession, lead_ids: list[str]) -> dict[str, HandedOver]:
    rows = await session.execute(select(HandedOver).where(HandedOver.lead_id.in_(lead_ids)))
    return {row.lead_id: row for row in rows.scalars()}


async def handed_over(session: AsyncSession, lead_id: str) -> HandedOver | None:
    return await session.get(HandedOver, lead_id)


async def touch_recorded(session: AsyncSession, event_id: str) -> bool:
    return bool(await session.scalar(select(Touch.id).where(Touch.event_id == event_id)))


async def disposition_recorded(session: AsyncSession, event_id: str) -> bool:
    return bool(await session.scalar(select(DispositionRow.id).where(DispositionRow.event_id == event_id)))


async def touches_of(session: AsyncSession, lead_id: str) -> list[Touch]:
    return list((await session.execute(select(Touch).where(Touch.lead_id == lead_id).order_by(Touch.id))).scalars())


async def dispositions_of(session: AsyncSession, lead_id: str) -> list[DispositionRow]:
    query = select(DispositionRow).where(DispositionRow.lead_id == lead_id).order_by(DispositionRow.id)
    return list((await session.execute(query)).scalars())


async def reviewed(
    session: AsyncSession, who: Principal, since: datetime | None, limit: int
) -> list[tuple[DispositionRow, int]]:
    """Verdicts other than an acceptance that ``who`` may see, newest first, with the touches the rep made."""
    query = scoped(
        select(DispositionRow, HandedOver.touches)
        .join(HandedOver, HandedOver.lead_id == DispositionRow.lead_id)
        .where(DispositionRow.disposition.in_([d.value for d in REVIEWED])),
        who,
        DispositionRow.rep_id,
        HandedOver.territory,
    )
    query = query.order_by(DispositionRow.recorded_at.desc()).limit(limit)
    if since is not None:
        query = query.where(DispositionRow.recorded_at >= since)
    return [(d, touches) for d, touches in (await session.execute(query)).all()]


async def outcomes(
    session: AsyncSession, who: Principal, since: datetime | None, territory: str | None
) -> list[LeadOutcome]:
    query = select(HandedOver.assigned_at, HandedOver.first_touch_at, HandedOver.touches, HandedOver.disposition)
    query = scoped(query, who, HandedOver.rep_id, HandedOver.territory)
    if since is not None:
        query = query.where(HandedOver.assigned_at >= since)
    if territory is not None:
        query = query.where(HandedOver.territory == territory)
    return [LeadOutcome(*r) for r in (await session.execute(query)).all()]
