"""Scoring's use cases: record what a lead did or said, rescore it, hand it over when it qualifies.

Each use case runs inside the caller's unit of work (one transaction per
batch of events) and writes its events to the outbox through ``uow.emit``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from leadrelay.db import UnitOfWork
from leadrelay.events import (
    ActivityRecorded,
    ActivitySummary,
    ActivityType,
    Contact,
    Disposition,
    DispositionRecorded,
    Envelope,
    FormSubmitted,
    LeadQualified,
    LeadScored,
    LeadStatus,
    ScoreReason,
)
from leadrelay.logging import get_logger
from leadrelay.service import ServiceContext
from scoring.domain import count_activity, decide, evaluate, profile_fields
from scoring.models import Activity, Lead

log = get_logger("scoring")


@dataclass
class Batch:
    """The batch's leads and their recent history, loaded up front (see :func:`prefetch`)."""

    leads: dict[str, Lead]
    # Per lead: (occurred_at, order, activity); order keeps the database's id order and puts
    # this batch's new activities after it.
    history: dict[str, list[tuple[datetime, int, ActivitySummary]]]
    next_order: int = 1 << 62


async def prefetch(ctx: ServiceContext, uow: UnitOfWork, envelopes: list[Envelope]) -> None:
    ids = list({env.subject for env in envelopes})
    leads = {
        lead.lead_id: lead for lead in (await uow.session.execute(select(Lead).where(Lead.lead_id.in_(ids)))).scalars()
    }
    history: dict[str, list[tuple[datetime, int, ActivitySummary]]] = defaultdict(list)
    if leads:
        # The last `history_limit` activities of each known lead, in one query.
        ranked = (
            select(
                Activity,
                func.row_number()
                .over(partition_by=Activity.lead_id, order_by=(Activity.occurred_at.desc(), Activity.id.desc()))
                .label("rank"),
            )
            .where(Activity.lead_id.in_(list(leads)))
            .subquery()
        )
        recent = aliased(Activity, ranked)
        rows = await uow.session.execute(select(recent).where(ranked.c.rank <= ctx.rules.lead_definition.history_limit))
        for a in rows.scalars():
            summary = ActivitySummary(type=ActivityType(a.type), occurred_at=a.occurred_at, url=a.url, detail=a.detail)
            history[a.lead_id].append((a.occurred_at, a.id, summary))
    uow.batch["scoring"] = Batch(leads=leads, history=history)


def _batch(uow: UnitOfWork) -> Batch:
    batch = uow.batch.get("scoring")
    if batch is None:
        raise RuntimeError("scoring handlers need the batch prefetch")
    return batch  # type: ignore[no-any-return]


def _lead(uow: UnitOfWork, lead_id: str, now: datetime) -> Lead:
    batch = _batch(uow)
    lead = batch.leads.get(lead_id)
    if lead is None:
        lead = Lead(
            lead_id=lead_id,
            status=LeadStatus.LEAD.value,
            custom={},
            reasons=[],
            engagement_counts={},
            fit=0,
            engagement=0,
            score=0,
            cycle=0,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(lead)
        batch.leads[lead_id] = lead
    return lead


async def form_submitted(ctx: ServiceContext, uow: UnitOfWork, event: FormSubmitted) -> None:
    lead = _lead(uow, event.lead_id, uow.now)
    # The newest submission wins field by field; fields it leaves empty keep what we knew.
    merged = dict(lead.contact or {})
    merged.update(event.contact.model_dump(exclude_none=True))
    lead.contact = merged
    lead.email = event.contact.email
    lead.custom = {**(lead.custom or {}), **event.custom}
    form = ctx.rules.form(event.form_id)
    if form is not None and form.handraiser and _after(event.submitted_at, lead.engagement_since):
        lead.handraised_at = event.submitted_at
    await _record(ctx, uow, lead, ActivityType.FORM_SUBMITTED, event.submitted_at, event.page_url, event.form_id)


async def activity_recorded(ctx: ServiceContext, uow: UnitOfWork, event: ActivityRecorded) -> None:
    lead = _lead(uow, event.lead_id, uow.now)
    if event.email and not lead.email:
        lead.email = event.email
        lead.contact = {**(lead.contact or {}), "email": event.email}
    defn = ctx.rules.lead_definition
    if event.activity in defn.handraiser_activities and _after(event.occurred_at, lead.engagement_since):
        lead.handraised_at = event.occurred_at
    detail = event.properties.get("title") or event.properties.get("name")
    await _record(ctx, uow, lead, event.activity, event.occurred_at, event.url, detail)


def _after(when: datetime, since: datetime | None) -> bool:
    return since is None or when >= since


async def _record(
    ctx: ServiceContext,
    uow: UnitOfWork,
    lead: Lead,
    activity: ActivityType,
    occurred_at: datetime,
    url: str | None,
    detail: str | None,
) -> None:
    detail = detail[:200] if detail else detail  # Activity.detail's width: a title, not a document
    uow.session.add(
        Activity(lead_id=lead.lead_id, type=activity.value, occurred_at=occurred_at, url=url, detail=detail)
    )
    batch = _batch(uow)
    batch.history[lead.lead_id].append(
        (occurred_at, batch.next_order, ActivitySummary(type=activity, occurred_at=occurred_at, url=url, detail=detail))
    )
    batch.next_order += 1
    if _after(occurred_at, lead.engagement_since):
        lead.engagement_counts = count_activity(ctx.rules.lead_definition, lead.engagement_counts or {}, activity, url)
    await rescore(ctx, uow, lead)


async def disposition_recorded(ctx: ServiceContext, uow: UnitOfWork, event: DispositionRecorded) -> None:
    """Sales' verdict moves the lead: accepted stays with sales, recycle and unreachable go back to nurture."""
    lead = _batch(uow).leads.get(event.lead_id)
    if lead is None:
        log.warning("disposition_for_unknown_lead", lead_id=event.lead_id)
        return
    if event.disposition is Disposition.ACCEPTED:
        lead.status = LeadStatus.ACCEPTED.value
    elif event.disposition is Disposition.JUNK:
        lead.status = LeadStatus.JUNK.value
    else:
        # Back to marketing: it must show readiness again, so engagement starts over.
        lead.status = LeadStatus.RECYCLED.value
        lead.engagement_since = event.recorded_at
        lead.engagement_counts = {}
        lead.handraised_at = None
    await rescore(ctx, uow, lead, force_event=True)


async def rescore(ctx: ServiceContext, uow: UnitOfWork, lead: Lead, force_event: bool = False) -> None:
    defn = ctx.rules.lead_definition
    contact = Contact.model_validate(lead.contact) if lead.contact and lead.contact.get("email") else None
    handraiser = lead.handraised_at is not None
    ev = evaluate(defn, profile_fields(contact, lead.custom or {}), lead.engagement_counts or {}, handraiser)
    previous = LeadStatus(lead.status)
    status, qualification = decide(previous, ev, defn.threshold, handraiser, reachable=contact is not None)
    changed = (ev.score, ev.fit, status.value) != (lead.score, lead.fit, lead.status)
    lead.fit, lead.engagement, lead.status = ev.fit, ev.engagement, status.value
    lead.reasons = [r.model_dump() for r in ev.reasons]
    lead.score = ev.score
    lead.updated_at = uow.now
    if changed or force_event or lead.cycle == 0 and lead.created_at == uow.now:
        uow.emit(
            ctx.envelope(
                LeadScored(
                    lead_id=lead.lead_id,
                    score=ev.score,
                    fit=ev.fit,
                    engagement=ev.engagement,
                    status=status,
                    previous_status=previous,
                    reasons=ev.reasons,
                    scored_at=uow.now,
                )
            )
        )
    if qualification is not None and contact is not None:
        lead.cycle += 1
        lead.qualification = qualification.value
        lead.qualified_at = uow.now
        history = _history(uow, lead.lead_id, defn.history_limit)
        uow.emit(
            ctx.envelope(
                LeadQualified(
                    lead_id=lead.lead_id,
                    qualification=qualification,
                    cycle=lead.cycle,
                    score=ev.score,
                    reasons=ev.reasons,
                    contact=contact,
                    custom=lead.custom or {},
                    activities=history,
                    qualified_at=uow.now,
                )
            )
        )
        log.info("lead_qualified", lead_id=lead.lead_id, qualification=qualification.value, score=ev.score)


def _history(uow: UnitOfWork, lead_id: str, limit: int) -> list[ActivitySummary]:
    """The lead's last ``limit`` activities, oldest first, including this batch's."""
    entries = sorted(_batch(uow).history.get(lead_id, []), key=lambda e: (e[0], e[1]))
    return [summary for _, _, summary in entries[-limit:]]


async def handle(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    data = envelope.data
    if isinstance(data, FormSubmitted):
        await form_submitted(ctx, uow, data)
    elif isinstance(data, ActivityRecorded):
        await activity_recorded(ctx, uow, data)
    elif isinstance(data, DispositionRecorded):
        await disposition_recorded(ctx, uow, data)
    # Other events on these topics (touches) do not change a score.


def reasons_of(lead: Lead) -> list[ScoreReason]:
    return [ScoreReason.model_validate(r) for r in lead.reasons or []]
