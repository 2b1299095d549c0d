"""The SLA monitor's one consumer: what a batch loads up front, and which event goes to which use
case of the clocks (``sla_monitor.clocks``), the reps' queue (``sla_monitor.queue``) and the
notifications (``sla_monitor.notify``), all in the batch's unit of work."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from leadrelay import consumers
from leadrelay.consumers import Handlers
from leadrelay.events import LEADS_ASSIGNED, LEADS_FEEDBACK, DispositionRecorded, Envelope, LeadAssigned, TouchLogged
from leadrelay.runtime import Subscription
from leadrelay.unit_of_work import UnitOfWork
from sla_monitor.clocks import repository as clocks_repository
from sla_monitor.clocks import service as clocks
from sla_monitor.clocks.domain import DISPOSITION_KIND, TOUCH, Seen
from sla_monitor.models import QueuedLead, SlaClock
from sla_monitor.notify import service as notify
from sla_monitor.notify.notifier import Notifier
from sla_monitor.queue import repository as queue_repository
from sla_monitor.queue import service as queue

if TYPE_CHECKING:
    from sla_monitor.resources import SlaContext


@dataclass
class Batch(consumers.Batch):
    """The batch's leads' clocks, the feedback already seen for them, and their latest assignments."""

    clocks: dict[str, list[SlaClock]]
    seen: dict[str, list[Seen]]
    # The leads' latest assignments: the rows of their reps' queues, which the notifications read.
    queue: dict[str, QueuedLead]
    # Who hears of what, on which channel: the notifications the batch's events cause.
    notifier: Notifier


async def prefetch(ctx: SlaContext, uow: UnitOfWork, envelopes: list[Envelope]) -> Batch:
    """The batch's leads' clocks and rows; the feedback already seen only if an assignment is in the batch."""
    ids = list({env.subject for env in envelopes})
    found = await clocks_repository.clocks_of(uow.session, ids)
    assigning = any(isinstance(env.data, LeadAssigned) for env in envelopes)
    seen = await clocks_repository.feedback_seen(uow.session, ids) if assigning else {}
    return Batch(
        uow=uow,
        rules=ctx.rules,
        envelope=ctx.envelope,
        clocks=defaultdict(list, found),
        seen=defaultdict(list, seen),
        queue=await queue_repository.queued_of(uow.session, ids),
        notifier=ctx.resources.notifier,
    )


async def lead_assigned(batch: Batch, event: LeadAssigned) -> None:
    """The clocks start, the lead's row in its rep's queue is replaced, and the rep is told."""
    seen = batch.seen[event.lead_id]
    due_at, first = clocks.start(batch.uow, batch.rules.sla, batch.clocks[event.lead_id], seen, event)
    queue.assigned(batch.uow, batch.queue, event, due_at, seen)
    notify.lead_assigned(batch.notifier, batch.uow, event, due_at, first=first)


async def touch_logged(batch: Batch, event: TouchLogged) -> None:
    lead = event.lead_id
    clocks.feedback(batch.uow, batch.clocks[lead], batch.seen[lead], lead, TOUCH, event.touched_at, None)
    queue.feedback(batch.queue, lead, TOUCH, event.touched_at, None)


async def disposition_recorded(batch: Batch, event: DispositionRecorded) -> None:
    lead, at, detail = event.lead_id, event.recorded_at, event.disposition.value
    clocks.feedback(batch.uow, batch.clocks[lead], batch.seen[lead], lead, DISPOSITION_KIND, at, detail)
    queue.feedback(batch.queue, lead, DISPOSITION_KIND, at, detail)
    notify.disposition_recorded(batch.notifier, batch.uow, batch.queue, event)


HANDLERS = (
    Handlers[Batch]()
    .on(LeadAssigned, lead_assigned)
    .on(TouchLogged, touch_logged)
    .on(DispositionRecorded, disposition_recorded)
)

SUBSCRIPTION = Subscription(
    group="sla-monitor", topics=[LEADS_ASSIGNED, LEADS_FEEDBACK], prefetch=prefetch, handlers=HANDLERS
)
