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
    LeadIdentified,
    TouchLogged,
    VisitorActivityRecorded,
)
from leadrelay.runtime import ServiceContext, Subscription
from leadrelay.unit_of_work import UnitOfWork
from scoring import repository, service
from scoring.service import Batch


async def prefetch(ctx: ServiceContext, uow: UnitOfWork, envelopes: list[Envelope]) -> Batch:
    """The batch's visitors (locked), its leads (locked) and their recent history, and the
    activities kept for the visitors a join may move.

    Locks are taken visitors first, then leads, each in key order, in every batch: a visitor's
    activity is credited to its lead from the visitor's partition while the lead's own partition
    may be handled by another consumer, and this one order keeps them from deadlocking."""
    session = uow.session
    keys: set[str] = set()
    joined: set[str] = set()  # the visitors a join names: only theirs kept activities may move
    ids: set[str] = set()
    for env in envelopes:
        data = env.data
        if isinstance(data, VisitorActivityRecorded):
            keys.add(data.visitor.key)
            continue
        ids.add(env.subject)
        if isinstance(data, FormSubmitted | LeadIdentified):
            joined.update(v.key for v in data.visitors)
    visitors = await repository.lock_visitors(session, sorted(keys | joined), uow.now)
    ids.update(v.lead_id for v in visitors.values() if v.lead_id is not None)
    leads = await repository.leads_by_id(session, sorted(ids), lock=True)
    kept = await repository.visitor_activities(session, sorted(k for k in joined if visitors[k].lead_id is None))
    # Assignments only record the owner: their leads need no history.
    assigned = {env.subject for env in envelopes if isinstance(env.data, LeadAssigned)}
    others = {env.subject for env in envelopes if not isinstance(env.data, LeadAssigned)}
    rescored = (ids - (assigned - others)) & set(leads)
    history = await repository.recent_history(session, sorted(rescored), ctx.rules.lead_definition.history_limit)
    return Batch(
        uow=uow,
        rules=ctx.rules,
        envelope=ctx.envelope,
        leads=leads,
        history=history,
        visitors=visitors,
        kept=dict(kept),
    )


HANDLERS = (
    Handlers[Batch](ignore=[TouchLogged])  # a touch does not change a score
    .on(FormSubmitted, service.form_submitted)
    .on(ActivityRecorded, service.activity_recorded)
    .on(VisitorActivityRecorded, service.visitor_activity_recorded)
    .on(LeadIdentified, service.lead_identified)
    .on(DispositionRecorded, service.disposition_recorded)
    .on(LeadAssigned, service.lead_assigned)
)

SUBSCRIPTION = Subscription(
    group="scoring", topics=[LEADS_INTAKE, LEADS_FEEDBACK, LEADS_ASSIGNED], prefetch=prefetch, handlers=HANDLERS
)
