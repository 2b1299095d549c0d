"""Scoring's consumer: which event goes to which use case, and what a batch loads up front."""

from __future__ import annotations

from leadrelay.consumers import Handlers
from leadrelay.events import (
    LEADS_ASSIGNED,
    LEADS_FEEDBACK,
    LEADS_INTAKE,
    ActivityRecorded,
    DispositionRecorded,
    Envelope,
    FormSubmitted,
    LeadAssigned,
    TouchLogged,
)
from leadrelay.runtime import ServiceContext, Subscription
from leadrelay.unit_of_work import UnitOfWork
from scoring import repository, service
from scoring.service import Batch


async def prefetch(ctx: ServiceContext, uow: UnitOfWork, envelopes: list[Envelope]) -> Batch:
    """The batch's leads and their recent history, in two queries."""
    ids = list({env.subject for env in envelopes})
    leads = await repository.leads_by_id(uow.session, ids)
    # Assignments only record the owner: their leads need no history.
    rescored = {env.subject for env in envelopes if not isinstance(env.data, LeadAssigned)} & set(leads)
    history = await repository.recent_history(uow.session, list(rescored), ctx.rules.lead_definition.history_limit)
    return Batch(uow=uow, rules=ctx.rules, envelope=ctx.envelope, leads=leads, history=history)


HANDLERS = (
    Handlers[Batch](ignore=[TouchLogged])  # a touch does not change a score
    .on(FormSubmitted, service.form_submitted)
    .on(ActivityRecorded, service.activity_recorded)
    .on(DispositionRecorded, service.disposition_recorded)
    .on(LeadAssigned, service.lead_assigned)
)

SUBSCRIPTION = Subscription(
    group="scoring", topics=[LEADS_INTAKE, LEADS_FEEDBACK, LEADS_ASSIGNED], prefetch=prefetch, handlers=HANDLERS
)
