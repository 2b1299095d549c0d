"""Feedback use cases: learn which leads sales has, record touches and dispositions, compute the loop.

A touch or disposition is stored and its event written to the outbox in one
transaction, so the 202 means it is durable. A client retry with the same
``Idempotency-Key`` gets the same event id and records nothing twice. The
rules live in ``feedback.domain``; the queries in ``feedback.repository``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from feedback import repository
from feedback.domain import funnel, supersedes
from feedback.models import DispositionRow, HandedOver, Touch
from leadrelay import consumers
from leadrelay.auth import Principal
from leadrelay.events import Actor, Channel, Disposition, DispositionRecorded, LeadAssigned, TouchLogged
from leadrelay.rules import Rules
from leadrelay.runtime import ServiceContext
from leadrelay.unit_of_work import UnitOfWork


class NotAssigned(LookupError):
    pass


@dataclass
class Batch(consumers.Batch):
    """The batch's handed-over rows, loaded up front (see ``feedback.consumers``)."""

    handed: dict[str, HandedOver]


async def lead_assigned(batch: Batch, event: LeadAssigned) -> None:
    row = batch.handed.get(event.lead_id)
    if not supersedes(row.cycle if row is not None else None, event.cycle):
        return
    if row is None:
        row = HandedOver(lead_id=event.lead_id)
        batch.uow.session.add(row)
        batch.handed[event.lead_id] = row
    row.cycle = event.cycle
    row.rep_id = event.rep_id
    row.territory = event.territory
    row.qualification = event.handoff.qualification.value
    row.assigned_at = event.assigned_at
    row.first_touch_at = None
    row.touches = 0
    row.disposition = None
    row.disposition_at = None


async def _handed(uow: UnitOfWork, lead_id: str) -> HandedOver:
    row = await repository.handed_over(uow.session, lead_id)
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
    if await repository.touch_recorded(uow.session, event_id):
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
    if await repository.disposition_recorded(uow.session, event_id):
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


def _logged_by(row: Touch | DispositionRow, rules: Rules) -> dict[str, str | None] | None:
    """Who logged it, with their name from the rules (a person's, or a source's)."""
    if row.actor_id is None:
        return None
    who = rules.person(row.actor_id) if row.actor_kind == "person" else rules.source(row.actor_id)
    return {"kind": row.actor_kind, "id": row.actor_id, "role": row.actor_role, "name": who.name if who else None}


async def lead_feedback(ctx: ServiceContext, who: Principal, lead_id: str) -> dict[str, Any]:
    async with ctx.database.read() as session:
        handed = await repository.handed_over(session, lead_id)
        who.check_lead(lead_id, handed.rep_id if handed else None, handed.territory if handed else None)
        if handed is None:
            raise NotAssigned(lead_id)
        touches = await repository.touches_of(session, lead_id)
        dispositions = await repository.dispositions_of(session, lead_id)
    return {
        "lead_id": lead_id,
        "rep_id": handed.rep_id,
        "cycle": handed.cycle,
        "assigned_at": handed.assigned_at,
        "touches": [
            {
                "rep_id": t.rep_id,
                "channel": t.channel,
                "note": t.note,
                "touched_at": t.touched_at,
                "cycle": t.cycle,
                "logged_by": _logged_by(t, ctx.rules),
            }
            for t in touches
        ],
        "dispositions": [
            {
                "rep_id": d.rep_id,
                "disposition": d.disposition,
                "reason": d.reason,
                "recorded_at": d.recorded_at,
                "cycle": d.cycle,
                "logged_by": _logged_by(d, ctx.rules),
            }
            for d in dispositions
        ],
    }


async def review_board(ctx: ServiceContext, who: Principal, since: datetime | None, limit: int) -> list[dict[str, Any]]:
    async with ctx.database.read() as session:
        rows = await repository.reviewed(session, who, since, limit)
    return [
        {
            "lead_id": d.lead_id,
            "rep_id": d.rep_id,
            "disposition": d.disposition,
            "reason": d.reason,
            "recorded_at": d.recorded_at,
            "touches": touches,
        }
        for d, touches in rows
    ]


async def closed_loop(
    ctx: ServiceContext, who: Principal, since: datetime | None, territory: str | None
) -> dict[str, object]:
    """The funnel over the leads handed to sales that ``who`` may see."""
    async with ctx.database.read() as session:
        return funnel(await repository.outcomes(session, who, since, territory))
