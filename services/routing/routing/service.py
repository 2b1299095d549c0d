"""Routing's use cases: assign a qualified lead, release it when sales hands it back.

The assignment, the cursor move and the ``LeadAssigned`` event commit together.
An assignment is unique per (lead, qualification cycle), so a redelivered or
repeated qualification never assigns a lead twice.
"""

from __future__ import annotations

from sqlalchemy import func, select

from leadrelay.db import UnitOfWork
from leadrelay.events import Disposition, DispositionRecorded, Envelope, Handoff, LeadAssigned, LeadQualified
from leadrelay.logging import get_logger
from leadrelay.service import ServiceContext
from routing.domain import choose
from routing.models import Assignment, Cursor

log = get_logger("routing")
ACTIVE = "active"
RELEASED = "released"


async def open_loads(uow: UnitOfWork) -> dict[str, int]:
    rows = await uow.session.execute(
        select(Assignment.rep_id, func.count()).where(Assignment.status == ACTIVE).group_by(Assignment.rep_id)
    )
    return {rep: int(n) for rep, n in rows.all()}


async def lead_qualified(ctx: ServiceContext, uow: UnitOfWork, event: LeadQualified) -> None:
    session = uow.session
    existing = await session.execute(
        select(Assignment).where(Assignment.lead_id == event.lead_id, Assignment.status == ACTIVE)
    )
    for active in existing.scalars():
        if active.cycle >= event.cycle:
            log.info("already_assigned", lead_id=event.lead_id, rep_id=active.rep_id, cycle=active.cycle)
            return
        # A newer qualification means the previous cycle ended (its recycle may simply not be here yet).
        active.status, active.released_at, active.release_reason = RELEASED, uow.now, "requalified"
    if await session.scalar(
        select(Assignment.id).where(Assignment.lead_id == event.lead_id, Assignment.cycle == event.cycle)
    ):
        return
    cursors = {c.territory: c.position for c in (await session.execute(select(Cursor))).scalars()}
    choice = choose(ctx.rules, event.contact, await open_loads(uow), cursors)
    if choice.cursor is not None:
        cursor = await session.get(Cursor, choice.territory.id)
        if cursor is None:
            session.add(Cursor(territory=choice.territory.id, position=choice.cursor))
        else:
            cursor.position = choice.cursor
    handoff = Handoff(
        contact=event.contact,
        qualification=event.qualification,
        score=event.score,
        reasons=event.reasons,
        activities=event.activities,
        custom=event.custom,
        account=choice.account.name if choice.account else None,
        matched_by=choice.matched_by,
    )
    session.add(
        Assignment(
            lead_id=event.lead_id,
            cycle=event.cycle,
            rep_id=choice.rep.id,
            territory=choice.territory.id,
            matched_by=choice.matched_by,
            status=ACTIVE,
            assigned_at=uow.now,
            handoff=handoff.model_dump(mode="json"),
        )
    )
    # Flush now: the next lead of this batch must see this rep's load.
    await session.flush()
    uow.emit(
        ctx.envelope(
            LeadAssigned(
                lead_id=event.lead_id,
                cycle=event.cycle,
                rep_id=choice.rep.id,
                territory=choice.territory.id,
                assigned_at=uow.now,
                handoff=handoff,
            )
        )
    )
    log.info(
        "lead_assigned",
        lead_id=event.lead_id,
        rep_id=choice.rep.id,
        territory=choice.territory.id,
        matched_by=choice.matched_by,
    )


async def disposition_recorded(uow: UnitOfWork, event: DispositionRecorded) -> None:
    """Recycled, junk or unreachable: the rep's slot frees up and marketing may contact the lead again."""
    if event.disposition is Disposition.ACCEPTED:
        return
    rows = await uow.session.execute(
        select(Assignment).where(Assignment.lead_id == event.lead_id, Assignment.status == ACTIVE)
    )
    for assignment in rows.scalars():
        assignment.status = RELEASED
        assignment.released_at = event.recorded_at
        assignment.release_reason = event.disposition.value


async def handle(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    data = envelope.data
    if isinstance(data, LeadQualified):
        await lead_qualified(ctx, uow, data)
    elif isinstance(data, DispositionRecorded):
        await disposition_recorded(uow, data)
