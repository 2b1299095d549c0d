"""SLA use cases: start clocks on assignment, stop them on feedback, fire breaches once.

Firing is a status change from ``running`` to ``breached`` plus an alert row
(unique per clock) plus the outbox event, all in one transaction, on rows
claimed with ``FOR UPDATE SKIP LOCKED``: several replicas, or a restart after
a long outage, still raise each alert exactly once. The rules (which deadlines,
what stops which clock) live in ``sla_monitor.domain``; the queries in
``sla_monitor.repository``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from leadrelay import consumers
from leadrelay.events import DispositionRecorded, LeadAssigned, SlaBreached, TouchLogged
from leadrelay.logging import get_logger
from sla_monitor import notifications, queue, repository
from sla_monitor.domain import (
    BREACHED,
    DISPOSITION_KIND,
    MET,
    RUNNING,
    TOUCH,
    clocks_stopped_by,
    deadlines,
    stopped_before_start,
)
from sla_monitor.models import Alert, FeedbackSeen, QueuedLead, SlaClock
from sla_monitor.models import Handoff as HandoffRow
from sla_monitor.notifications import Notifier
from sla_monitor.repository import Seen

if TYPE_CHECKING:
    from sla_monitor.resources import SlaContext

log = get_logger("sla_monitor")
CLAIM_BATCH = 200


@dataclass
class Batch(consumers.Batch):
    """The batch's leads' clocks and the feedback already seen for them (see ``sla_monitor.consumers``)."""

    clocks: dict[str, list[SlaClock]]
    seen: dict[str, list[Seen]]
    # The leads' rows in their reps' queues (see ``sla_monitor.queue``).
    queue: dict[str, QueuedLead]
    # The leads' latest handoffs, for the notifications about them (see ``sla_monitor.notifications``).
    handoffs: dict[str, HandoffRow]
    # Who hears of what, on which channel: the notifications the batch's events cause.
    notifier: Notifier


async def lead_assigned(batch: Batch, event: LeadAssigned) -> None:
    uow = batch.uow
    stopped = stopped_before_start(batch.seen[event.lead_id], event.assigned_at)
    existing = {c.name for c in batch.clocks[event.lead_id] if c.cycle == event.cycle}
    due_at = deadlines(batch.rules.sla, event.handoff.qualification, event.assigned_at)
    queue.assigned(uow, batch.queue, event, due_at, batch.seen[event.lead_id])
    for name, due in due_at.items():
        if name in existing:
            continue
        clock = SlaClock(
            lead_id=event.lead_id,
            cycle=event.cycle,
            name=name,
            rep_id=event.rep_id,
            territory=event.territory,
            started_at=event.assigned_at,
            due_at=due,
            status=MET if name in stopped else RUNNING,
            stopped_at=uow.now if name in stopped else None,
            warn_at=batch.rules.sla.warn_at(event.assigned_at, due),
        )
        uow.session.add(clock)
        batch.clocks[event.lead_id].append(clock)
    await notifications.lead_assigned(batch.notifier, uow, batch.handoffs, event, due_at, first=not existing)


async def touch_logged(batch: Batch, event: TouchLogged) -> None:
    _feedback(batch, event.lead_id, TOUCH, event.touched_at)


async def disposition_recorded(batch: Batch, event: DispositionRecorded) -> None:
    _feedback(batch, event.lead_id, DISPOSITION_KIND, event.recorded_at, event.disposition.value)
    await notifications.disposition_recorded(batch.notifier, batch.uow, batch.handoffs, event)


def _feedback(batch: Batch, lead_id: str, kind: str, at: datetime, detail: str | None = None) -> None:
    """Stop the clocks this feedback meets, update the rep's queue, and remember it for an
    assignment still on its way."""
    uow = batch.uow
    uow.session.add(FeedbackSeen(lead_id=lead_id, kind=kind, at=at, detail=detail))
    batch.seen[lead_id].append((kind, at, detail))
    queue.feedback(batch.queue, lead_id, kind, at, detail)
    stops = clocks_stopped_by(kind)
    for clock in batch.clocks[lead_id]:
        if clock.status == RUNNING and clock.name in stops:
            clock.status = MET
            clock.stopped_at = uow.now


async def fire_due(ctx: SlaContext) -> int:
    """Breach every running clock whose deadline has passed; returns how many fired."""
    fired = 0
    async with ctx.unit_of_work() as uow:
        breached: list[SlaClock] = []
        for clock in await repository.claim_due(uow.session, uow.now, CLAIM_BATCH):
            clock.status = BREACHED
            clock.stopped_at = uow.now
            uow.session.add(
                Alert(
                    clock_id=clock.id,
                    lead_id=clock.lead_id,
                    clock=clock.name,
                    cycle=clock.cycle,
                    rep_id=clock.rep_id,
                    territory=clock.territory,
                    due_at=clock.due_at,
                    raised_at=uow.now,
                )
            )
            uow.emit(
                ctx.envelope(
                    SlaBreached(
                        lead_id=clock.lead_id,
                        clock=clock.name,
                        cycle=clock.cycle,
                        rep_id=clock.rep_id,
                        territory=clock.territory,
                        due_at=clock.due_at,
                        breached_at=uow.now,
                    )
                )
            )
            log.warning(
                "sla_breached",
                lead_id=clock.lead_id,
                clock=clock.name,
                rep_id=clock.rep_id,
                due_at=clock.due_at.isoformat(),
            )
            fired += 1
            breached.append(clock)
        await notifications.breached(ctx.resources.notifier, uow, breached)

    return fired


async def timer_loop(ctx: SlaContext) -> None:
    """Background job: check deadlines every tick. Deadlines missed while stopped fire on start."""
    while not ctx.stopping.is_set():
        try:
            while await fire_due(ctx) >= CLAIM_BATCH and not ctx.stopping.is_set():
                pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("sla_timer_failed", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), timeout=ctx.settings.sla_tick_seconds)
