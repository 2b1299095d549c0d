"""Feedback's consumer: it learns from ``leads.assigned`` which leads sales has."""

from __future__ import annotations

from feedback import repository, service
from feedback.service import Batch
from leadrelay.consumers import Handlers
from leadrelay.events import LEADS_ASSIGNED, Envelope, LeadAssigned
from leadrelay.runtime import ServiceContext, Subscription
from leadrelay.unit_of_work import UnitOfWork


async def prefetch(ctx: ServiceContext, uow: UnitOfWork, envelopes: list[Envelope]) -> Batch:
    """The batch's handed-over rows, in one query."""
    handed = await repository.handed_over_of(uow.session, list({env.subject for env in envelopes}))
    return Batch(uow=uow, rules=ctx.rules, envelope=ctx.envelope, handed=handed)


HANDLERS = Handlers[Batch]().on(LeadAssigned, service.lead_assigned)

SUBSCRIPTION = Subscription(group="feedback", topics=[LEADS_ASSIGNED], prefetch=prefetch, handlers=HANDLERS)
