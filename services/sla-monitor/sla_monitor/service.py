"""SLA use cases: start clocks on assignment, stop them on feedback, fire breaches once.

Firing is a status change from ``running`` to ``breached`` plus an alert row
(unique per clock) plus the outbox event, all in one transaction, on rows
claimed with ``FOR UPDATE SKIP LOCKED``: several replicas, or a restart after
a long outage, still raise each alert exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from leadrelay.db import UnitOfWork
from leadrelay.events import DispositionRecorded, Envelope, LeadAssigned, SlaBreached, TouchLogged
from leadrelay.logging import get_logger
from leadrelay.service import ServiceContext
from sla_monitor import notifications
from sla_monitor.domain import BREACHED, MET, RUNNING, clocks_stopped_by, deadlines
from sla_monitor.models import Alert, FeedbackSeen, SlaClock

log = get_logger("sla_monitor")
CLAIM_BATCH = 200


@dataclass
class Batch:
    """The batch's leads' clocks and the feedback already seen for them (see :func:`prefetch`)."""

    clocks: dict[str, list[SlaClock]]
    seen: dict[str, list[tuple[str, datetime]]]


async def prefetch(ctx: ServiceContext, uow: UnitOfWork, envelopes: list[Envelope]) -> None:
    ids = list({env.subject for env in envelopes})
    clocks: dict[str, list[SlaClock]] = defaultdict(list)
    seen: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for clock in (await uow.session.execute(select(SlaClock).where(SlaClock.lead_id.in_(ids)))).scalars():
        clocks[clock.lead_id].append(clock)
    if any(isinstance(env.data, LeadAssigned) for env in envelopes):
        rows = await uow.session.execute(
            select(FeedbackSeen.lead_id, FeedbackSeen.kind, FeedbackSeen.at).where(FeedbackSeen.lead_id.in_(ids))
        )
        for lead_id, kind, at in rows.all():
            seen[lead_id].append((kind, at))
    uow.batch["sla"] = Batch(clocks=clocks, seen=seen)
    await notifications.prefetch(ctx, uow, envelopes)


def _batch(uow: UnitOfWork) -> Batch:
    batch = uow.batch.get("sla")
    if batch is None:
        raise RuntimeError("sla-monitor handlers need the batch prefetch")
    return batch  # type: ignore[no-any-return]


async def lead_assigned(ctx: ServiceContext, uow: UnitOfWork, event: LeadAssigned) -> None:
    batch = _batch(uow)
    stopped = {
        name for kind, at in batch.seen[event.lead_id] if at >= event.assigned_at for name in clocks_stopped_by(kind)
    }
    existing = {c.name for c in batch.clocks[event.lead_id] if c.cycle == event.cycle}
    due_at = deadlines(ctx.rules.sla, event.handoff.qualification, event.assigned_at)
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
            warn_at=ctx.rules.sla.warn_at(event.assigned_at, due),
        )
        uow.session.add(clock)
        batch.clocks[event.lead_id].append(clock)
    await notifications.lead_assigned(ctx, uow, event, due_at, first=not existing)


async def feedback(uow: UnitOfWork, lead_id: str, kind: str, at: datetime) -> None:
    batch = _batch(uow)
    uow.session.add(FeedbackSeen(lead_id=lead_id, kind=kind, at=at))
    batch.seen[lead_id].append((kind, at))
    stops = clocks_stopped_by(kind)
    for clock in batch.clocks[lead_id]:
        if clock.status == RUNNING and clock.name in stops:
            clock.status = MET
            clock.stopped_at = uow.now


async def handle(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    data = envelope.data
    if isinstance(data, LeadAssigned):
        await lead_assigned(ctx, uow, data)
    elif isinstance(data, TouchLogged):
        await feedback(uow, data.lead_id, "touch", data.touched_at)
    elif isinstance(data, DispositionRecorded):
        await feedback(uow, data.lead_id, "disposition", data.recorded_at)
        await notifications.disposition_recorded(ctx, uow, envelope)


async def fire_due(ctx: ServiceContext) -> int:
    """Breach every running clock whose deadline has passed; returns how many fired."""
    fired = 0

    async def work(uow: UnitOfWork) -> None:
        nonlocal fired
        breached: list[SlaClock] = []
        query = (
            select(SlaClock)
            .where(SlaClock.status == RUNNING, SlaClock.due_at <= uow.now)
            .order_by(SlaClock.due_at)
            .limit(CLAIM_BATCH)
            .with_for_update(skip_locked=True)
        )
        for clock in (await uow.session.execute(query)).scalars():
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
        await notifications.breached(ctx, uow, breached)

    await ctx.commit_and_relay(work)
    return fired


async def timer_loop(ctx: ServiceContext) -> None:
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
