"""The SLA monitor's consumer: which event goes to which use case, and what a batch loads up front."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from leadrelay.consumers import Handlers
from leadrelay.events import LEADS_ASSIGNED, LEADS_FEEDBACK, DispositionRecorded, Envelope, LeadAssigned, TouchLogged
from leadrelay.runtime import Subscription
from leadrelay.unit_of_work import UnitOfWork
from sla_monitor import repository, service
from sla_monitor.service import Batch

if TYPE_CHECKING:
    from sla_monitor.resources import SlaContext


async def prefetch(ctx: SlaContext, uow: UnitOfWork, envelopes: list[Envelope]) -> Batch:
    """The batch's leads' clocks; the feedback already seen only if an assignment is in the batch."""
    ids = list({env.subject for env in envelopes})
    clocks = await repository.clocks_of(uow.session, ids)
    assigning = any(isinstance(env.data, LeadAssigned) for env in envelopes)
    seen = await repository.feedback_seen(uow.session, ids) if assigning else {}
    queued = await repository.queued_of(uow.session, ids)
    # The handoffs the notifications need: only for assignments and dispositions.
    notified = list({env.subject for env in envelopes if isinstance(env.data, LeadAssigned | DispositionRecorded)})
    handoffs = await repository.handoffs_of(uow.session, notified)
    return Batch(
        uow=uow,
        rules=ctx.rules,
        envelope=ctx.envelope,
        clocks=clocks,
        seen=defaultdict(list, seen),
        queue=queued,
        handoffs=handoffs,
        notifier=ctx.resources.notifier,
    )


HANDLERS = (
    Handlers[Batch]()
    .on(LeadAssigned, service.lead_assigned)
    .on(TouchLogged, service.touch_logged)
    .on(DispositionRecorded, service.disposition_recorded)
)

SUBSCRIPTION = Subscription(
    group="sla-monitor", topics=[LEADS_ASSIGNED, LEADS_FEEDBACK], prefetch=prefetch, handlers=HANDLERS
)
