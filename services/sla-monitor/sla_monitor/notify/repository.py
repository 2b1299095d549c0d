"""Every query of the notifications: the delivery job's claim and its outcome's row, the pending
deliveries' gauges, and the delivery log's reads. (Who a lead is comes from its latest assignment:
``sla_monitor.queue.repository.queued_of``.)"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sla_monitor.models import Delivery, Notification
from sla_monitor.notify.domain import PENDING


async def claim_due(
    session: AsyncSession, now: datetime, limit: int, saturated: Collection[str], in_flight: Collection[int]
) -> list[tuple[Delivery, Notification]]:
    """Pending deliveries due by ``now`` with their notifications, oldest due first, locked for this
    transaction (rows another replica holds are skipped); none of a ``saturated`` lane nor one
    ``in_flight`` here."""
    query = (
        select(Delivery, Notification)
        .join(Notification, Delivery.notification_id == Notification.id)
        .where(Delivery.status == PENDING, Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
        .with_for_update(of=Delivery, skip_locked=True)
    )
    if saturated:
        query = query.where(Delivery.lane.not_in(saturated))
    if in_flight:
        query = query.where(Delivery.id.not_in(in_flight))
    return [(d, n) for d, n in (await session.execute(query)).all()]


async def delivery_for_update(session: AsyncSession, delivery_id: int) -> Delivery | None:
    """One delivery, locked for this transaction (its outcome or a redelivery is written)."""
    return await session.get(Delivery, delivery_id, with_for_update=True)


async def notification(session: AsyncSession, notification_id: int) -> Notification | None:
    return await session.get(Notification, notification_id)


async def pending(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many deliveries are pending, and when the oldest of them was created."""
    count, oldest = (
        await session.execute(
            select(func.count(Delivery.id), func.min(Delivery.created_at)).where(Delivery.status == PENDING)
        )
    ).one()
    return int(count or 0), oldest


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
