"""Routing's use cases: assign a qualified lead, release it when sales hands it back.

The assignment, the cursor move and the ``LeadAssigned`` event commit together.
An assignment is unique per (lead, qualification cycle), so a redelivered or
repeated qualification never assigns a lead twice. The rules (who gets the
lead, what a qualification or a disposition releases) live in
``routing.domain``; the queries in ``routing.repository``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from leadrelay import consumers
from leadrelay.events import DispositionRecorded, Handoff, LeadAssigned, LeadQualified
from leadrelay.logging import get_logger
from routing.domain import ACTIVE, RELEASED, REQUALIFIED, choose, plan_qualification
from routing.models import Assignment, Cursor

log = get_logger("routing")


@dataclass
class Batch(consumers.Batch):
    """What assigning the batch's leads needs, loaded up front (see ``routing.consumers``) and
    kept current in memory as the batch assigns and releases, so each lead sees the loads before it."""

    assignments: dict[str, list[Assignment]]
    cursors: dict[str, Cursor]
    loads: dict[str, int]
    # Availability set at run time, where it overrides the rules (rep id -> available).
    available: dict[str, bool] = field(default_factory=dict)

    def release(self, assignment: Assignment, at: datetime, reason: str) -> None:
        assignment.status, assignment.released_at, assignment.release_reason = RELEASED, at, reason
        self.loads[assignment.rep_id] = max(0, self.loads.get(assignment.rep_id, 0) - 1)


async def lead_qualified(batch: Batch, event: LeadQualified) -> None:
    uow = batch.uow
    existing = batch.assignments[event.lead_id]
    plan = plan_qualification([(a.cycle, a.status) for a in existing], event.cycle)
    for a in existing:
        if a.status == ACTIVE and a.cycle in plan.release:
            batch.release(a, uow.now, REQUALIFIED)
    if not plan.assign:
        log.info("already_assigned", lead_id=event.lead_id, cycle=event.cycle)
        return
    positions = {territory: c.position for territory, c in batch.cursors.items()}
    choice = choose(batch.rules, event.contact, batch.loads, positions, batch.available)
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
        consent=event.consent,
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
        batch.envelope(
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


async def disposition_recorded(batch: Batch, event: DispositionRecorded) -> None:
    if not event.disposition.closes_assignment:
        return
    for assignment in batch.assignments[event.lead_id]:
        if assignment.status == ACTIVE:
            batch.release(assignment, event.recorded_at, event.disposition.value)
