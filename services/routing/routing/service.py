"""Routing's use cases: assign a qualified lead, release it when sales hands it back.

The assignment, the cursor move and the ``LeadAssigned`` event commit together.
An assignment is unique per (lead, qualification cycle), so a redelivered or
repeated qualification never assigns a lead twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from leadrelay.db import UnitOfWork
from leadrelay.events import Disposition, DispositionRecorded, Envelope, Handoff, LeadAssigned, LeadQualified
from leadrelay.logging import get_logger
from leadrelay.service import ServiceContext
from routing import availability
from routing.domain import choose
from routing.models import Assignment, Cursor

log = get_logger("routing")
ACTIVE = "active"
RELEASED = "released"


@dataclass
class Batch:
    """What assigning the batch's leads needs, loaded up front (see :func:`prefetch`) and kept
    current in memory as the batch assigns and releases, so each lead sees the loads before it."""

    assignments: dict[str, list[Assignment]]
    cursors: dict[str, Cursor]
    loads: dict[str, int]
    # Availability set at run time, where it overrides the rules (rep id -> available).
    available: dict[str, bool] = field(default_factory=dict)


async def open_loads(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(Assignment.rep_id, func.count()).where(Assignment.status == ACTIVE).group_by(Assignment.rep_id)
    )
    return {rep: int(n) for rep, n in rows.all()}


async def prefetch(ctx: ServiceContext, uow: UnitOfWork, envelopes: list[Envelope]) -> None:
    ids = list({env.subject for env in envelopes if isinstance(env.data, LeadQualified | DispositionRecorded)})
    assignments: dict[str, list[Assignment]] = defaultdict(list)
    cursors: dict[str, Cursor] = {}
    loads: dict[str, int] = {}
    available: dict[str, bool] = {}
    if ids:
        rows = await uow.session.execute(select(Assignment).where(Assignment.lead_id.in_(ids)))
        for a in rows.scalars():
            assignments[a.lead_id].append(a)
    if any(isinstance(env.data, LeadQualified) for env in envelopes):
        cursors = {c.territory: c for c in (await uow.session.execute(select(Cursor))).scalars()}
        loads = await open_loads(uow.session)
        available = availability.overrides(await availability.load(uow.session), uow.now)
    uow.batch["routing"] = Batch(assignments=assignments, cursors=cursors, loads=loads, available=available)


def _batch(uow: UnitOfWork) -> Batch:
    batch = uow.batch.get("routing")
    if batch is None:
        raise RuntimeError("routing handlers need the batch prefetch")
    return batch  # type: ignore[no-any-return]


def _release(batch: Batch, assignment: Assignment, at: datetime, reason: str) -> None:
    assignment.status, assignment.released_at, assignment.release_reason = RELEASED, at, reason
    batch.loads[assignment.rep_id] = max(0, batch.loads.get(assignment.rep_id, 0) - 1)


async def lead_qualified(ctx: ServiceContext, uow: UnitOfWork, event: LeadQualified) -> None:
    batch = _batch(uow)
    existing = batch.assignments[event.lead_id]
    for active in [a for a in existing if a.status == ACTIVE]:
        if active.cycle >= event.cycle:
            log.info("already_assigned", lead_id=event.lead_id, rep_id=active.rep_id, cycle=active.cycle)
            return
        # A newer qualification means the previous cycle ended (its recycle may simply not be here yet).
        _release(batch, active, uow.now, "requalified")
    if any(a.cycle == event.cycle for a in existing):
        return
    positions = {territory: c.position for territory, c in batch.cursors.items()}
    choice = choose(ctx.rules, event.contact, batch.loads, positions, batch.available)
    if choice.cursor is not None:
        cursor = batch.cursors.get(choice.territory.id)
        if cursor is None:
            cursor = Cursor(territory=choice.territory.id, position=choice.cursor)
            uow.session.add(cursor)
            batch.cursors[choice.territory.id] = cursor
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
    assignment = Assignment(
        lead_id=event.lead_id,
        cycle=event.cycle,
        rep_id=choice.rep.id,
        territory=choice.territory.id,
        matched_by=choice.matched_by,
        status=ACTIVE,
        assigned_at=uow.now,
        handoff=handoff.model_dump(mode="json"),
    )
    uow.session.add(assignment)
    existing.append(assignment)
    batch.loads[choice.rep.id] = batch.loads.get(choice.rep.id, 0) + 1
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
    batch = _batch(uow)
    for assignment in batch.assignments[event.lead_id]:
        if assignment.status == ACTIVE:
            _release(batch, assignment, event.recorded_at, event.disposition.value)


async def handle(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    data = envelope.data
    if isinstance(data, LeadQualified):
        await lead_qualified(ctx, uow, data)
    elif isinstance(data, DispositionRecorded):
        await disposition_recorded(uow, data)
