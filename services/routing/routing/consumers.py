"""Routing's consumer: which event goes to which use case, and what a batch loads up front."""

from __future__ import annotations

from leadrelay.consumers import Handlers
from leadrelay.events import (
    LEADS_FEEDBACK,
    LEADS_SCORED,
    DispositionRecorded,
    Envelope,
    LeadQualified,
    LeadScored,
    TouchLogged,
)
from leadrelay.runtime import ServiceContext, Subscription
from leadrelay.unit_of_work import UnitOfWork
from routing import availability, repository, service
from routing.service import Batch


async def prefetch(ctx: ServiceContext, uow: UnitOfWork, envelopes: list[Envelope]) -> Batch:
    """The batch's leads' assignments; the cursors, the reps' loads and availability only if something
    is to be assigned."""
    ids = list({env.subject for env in envelopes if isinstance(env.data, LeadQualified | DispositionRecorded)})
    assignments = await repository.assignments_of(uow.session, ids)
    qualifying = any(isinstance(env.data, LeadQualified) for env in envelopes)
    cursors = await repository.cursors(uow.session) if qualifying else {}
    loads = await repository.open_loads(uow.session) if qualifying else {}
    # Availability set at run time (routing.availability), applied from the next batch.
    available = availability.overrides(await repository.availability_rows(uow.session), uow.now) if qualifying else {}
    return Batch(
        uow=uow,
        rules=ctx.rules,
        envelope=ctx.envelope,
        assignments=assignments,
        cursors=cursors,
        loads=loads,
        available=available,
    )


HANDLERS = (
    # A score that moves without qualifying, and a touch, change no assignment.
    Handlers[Batch](ignore=[LeadScored, TouchLogged])
    .on(LeadQualified, service.lead_qualified)
    .on(DispositionRecorded, service.disposition_recorded)
)

SUBSCRIPTION = Subscription(
    group="routing", topics=[LEADS_SCORED, LEADS_FEEDBACK], prefetch=prefetch, handlers=HANDLERS
)
