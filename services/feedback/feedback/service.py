"""Feedback use cases: learn which leads sales has, record touches and dispositions, compute the loop.

A touch or disposition is stored and its event written to the outbox in one
transaction, so the 202 means it is durable. A client retry with the same
``Idempotency-Key`` gets the same event id and records nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from feedback.domain import LeadOutcome, funnel
from feedback.models import DispositionRow, HandedOver, Touch
from leadrelay.auth import Principal, scoped
from leadrelay.db import UnitOfWork
from leadrelay.events import Actor, Channel, Disposition, DispositionRecorded, Envelope, LeadAssigned, TouchLogged
from leadrelay.service import ServiceContext


class NotAssigned(LookupError):
    pass


async def prefetch(ctx: ServiceContext, uow: UnitOfWork, envelopes: list[Envelope]) -> None:
    """The batch's handed-over rows in one query (see :func:`lead_assigned`)."""
    ids = list({env.subject for env in envelopes})
    rows = await uow.session.execute(select(HandedOver).where(HandedOver.lead_id.in_(ids)))
    uow.batch["handed"] = {row.lead_id: row for row in rows.scalars()}


async def lead_assigned(uow: UnitOfWork, event: LeadAssigned) -> None:
    handed: dict[str, HandedOver] = uow.batch["handed"]
    row = handed.get(event.lead_id)
    if row is not None and row.cycle >= event.cycle:
        return
    if row is None:
        row = HandedOver(lead_id=event.lead_id)
        uow.session.add(row)
        handed[event.lead_id] = row
    row.cycle = event.cycle
    row.rep_id = event.rep_id
    row.territory = event.territory
    row.qualification = event.handoff.qualification.value
    row.assigned_at = event.assigned_at
    row.first_touch_at = None
    row.touches = 0
    row.disposition = None
    row.disposition_at = None


async def handle(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    if isinstance(envelope.data, LeadAssigned):
        await lead_assigned(uow, envelope.data)


async def _handed(uow: UnitOfWork, lead_id: str) -> HandedOver:
    row = await uow.session.get(HandedOver, lead_id)
    if row is None:
        raise NotAssigned(lead_id)
    return row


async def log_touch(
    ctx: ServiceContext,
    uow: UnitOfWork,
    event_id: str,
    lead_id: str,
    rep_id: str,
    channel: Channel,
    note: str | None,
    actor: Actor | None = None,
) -> None:
    if await uow.session.scalar(select(Touch.id).where(Touch.event_id == event_id)):
        return  # a client retry
    row = await _handed(uow, lead_id)
    uow.session.add(
        Touch(
            event_id=event_id,
            lead_id=lead_id,
            cycle=row.cycle,
            rep_id=rep_id,
            channel=channel.value,
            note=note,
            touched_at=uow.now,
            **_actor_columns(actor),
        )
    )
    row.touches += 1
    if row.first_touch_at is None:
        row.first_touch_at = uow.now
    uow.emit(
        ctx.envelope(
            TouchLogged(lead_id=lead_id, rep_id=rep_id, channel=channel, note=note, touched_at=uow.now, actor=actor),
            event_id,
        )
    )


async def record_disposition(
    ctx: ServiceContext,
    uow: UnitOfWork,
    event_id: str,
    lead_id: str,
    rep_id: str,
    disposition: Disposition,
    reason: str | None,
    actor: Actor | None = None,
) -> None:
    if await uow.session.scalar(select(DispositionRow.id).where(DispositionRow.event_id == event_id)):
        return
    row = await _handed(uow, lead_id)
    uow.session.add(
        DispositionRow(
            event_id=event_id,
            lead_id=lead_id,
            cycle=row.cycle,
            rep_id=rep_id,
            disposition=disposition.value,
            reason=reason,
            recorded_at=uow.now,
            **_actor_columns(actor),
        )
    )
    row.disposition = disposition.value
    row.disposition_at = uow.now
    uow.emit(
        ctx.envelope(
            DispositionRecorded(
                lead_id=lead_id,
                rep_id=rep_id,
                disposition=disposition,
                reason=reason,
                recorded_at=uow.now,
                actor=actor,
            ),
            event_id,
        )
    )


def _actor_columns(actor: Actor | None) -> dict[str, str | None]:
    return {
        "actor_kind": actor.kind if actor else None,
        "actor_id": actor.id if actor else None,
        "actor_role": actor.role if actor else None,
    }


async def closed_loop(
    uow: UnitOfWork, since: datetime | None, territory: str | None, who: Principal | None = None
) -> dict[str, object]:
    """The funnel over the leads handed to sales (those ``who`` may see, when given)."""
    query = select(HandedOver.assigned_at, HandedOver.first_touch_at, HandedOver.touches, HandedOver.disposition)
    if who is not None:
        query = scoped(query, who, HandedOver.rep_id, HandedOver.territory)
    if since is not None:
        query = query.where(HandedOver.assigned_at >= since)
    if territory is not None:
        query = query.where(HandedOver.territory == territory)
    rows = (await uow.session.execute(query)).all()
    return funnel([LeadOutcome(*r) for r in rows])
