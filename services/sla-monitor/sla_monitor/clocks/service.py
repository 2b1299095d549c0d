"""SLA clocks' use cases: start clocks on assignment, stop them on feedback, fire breaches and
warnings once.

Firing is a status change from ``running`` to ``breached`` plus an alert row
(unique per clock) plus the outbox event, all in one transaction, on rows
claimed with ``FOR UPDATE SKIP LOCKED``: several replicas, or a restart after
a long outage, still raise each alert exactly once. A warning is claimed the
same way and marked ``warned_at``. The rules (which deadlines, what stops which
clock) live in ``sla_monitor.clocks.domain``; the queries in
``sla_monitor.clocks.repository``; who hears of a breach or a warning in
``sla_monitor.notify``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import TYPE_CHECKING

from leadrelay.events import LeadAssigned, SlaBreached
from leadrelay.logging import get_logger
from leadrelay.rules import Sla
from leadrelay.unit_of_work import UnitOfWork
from sla_monitor.clocks import repository
from sla_monitor.clocks.domain import BREACHED, MET, RUNNING, Seen, clocks_stopped_by, deadlines, stopped_before_start
from sla_monitor.models import Alert, FeedbackSeen, SlaClock
from sla_monitor.notify import service as notify

if TYPE_CHECKING:
    from sla_monitor.resources import SlaContext

log = get_logger("sla_monitor")
# The warnings have always logged under the notifications' name.
warnings_log = get_logger("sla_monitor.notifications")
CLAIM_BATCH = 200


def start(
    uow: UnitOfWork, sla: Sla, clocks: list[SlaClock], seen: list[Seen], event: LeadAssigned
) -> tuple[dict[str, datetime], bool]:
    """Start the assignment's clocks (``clocks``: the lead's, loaded by the batch; those of this
    cycle that exist already are kept), met at once if feedback overtook the assignment. Returns the
    deadlines and whether this cycle's clocks are new (a re-emitted assignment finds them)."""
    stopped = stopped_before_start(seen, event.assigned_at)
    existing = {c.name for c in clocks if c.cycle == event.cycle}
    due_at = deadlines(sla, event.handoff.qualification, event.assigned_at)
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
            warn_at=sla.warn_at(event.assigned_at, due),
        )
        uow.session.add(clock)
        clocks.append(clock)
    return due_at, not existing


def feedback(
    uow: UnitOfWork, clocks: list[SlaClock], seen: list[Seen], lead_id: str, kind: str, at: datetime, detail: str | None
) -> None:
    """Stop the clocks this feedback meets, and remember it for an assignment still on its way."""
    uow.session.add(FeedbackSeen(lead_id=lead_id, kind=kind, at=at, detail=detail))
    seen.append((kind, at, detail))
    stops = clocks_stopped_by(kind)
    for clock in clocks:
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
        await notify.breached(ctx.resources.notifier, uow, breached)

    return fired


async def fire_warnings(ctx: SlaContext) -> int:
    """Warn of every running clock whose warning time has come and whose deadline has not passed,
    once: the clocks are claimed with ``FOR UPDATE SKIP LOCKED`` and marked ``warned_at`` in the
    transaction that writes the notification. Returns how many fired."""
    async with ctx.unit_of_work() as uow:
        clocks = await repository.claim_warnings(uow.session, uow.now, CLAIM_BATCH)
        if not clocks:
            return 0
        for clock in clocks:
            clock.warned_at = uow.now
            warnings_log.info("sla_warning", lead_id=clock.lead_id, clock=clock.name, due_at=clock.due_at.isoformat())
        await notify.warned(ctx.resources.notifier, uow, clocks)
    return len(clocks)


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


async def warning_loop(ctx: SlaContext) -> None:
    """Background job: warnings before deadlines, checked every SLA tick (only with sla.warn_before)."""
    if ctx.rules.sla.warn_before is None:
        return
    while not ctx.stopping.is_set():
        try:
            while await fire_warnings(ctx) >= CLAIM_BATCH and not ctx.stopping.is_set():
                pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            warnings_log.warning("sla_warnings_failed", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), timeout=ctx.settings.sla_tick_seconds)
