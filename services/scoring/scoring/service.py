"""Scoring's use cases: record what a lead did or said, rescore it, hand it over when it qualifies.

Each use case works on the consumer's :class:`Batch` (the batch's leads and
their recent history, loaded up front by ``scoring.consumers``) inside the
batch's transaction, and writes its events to the outbox through ``uow.emit``.
The rules they apply live in ``scoring.domain``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from leadrelay import consumers
from leadrelay.events import (
    ActivityRecorded,
    ActivitySummary,
    ActivityType,
    ConsentEvidence,
    Contact,
    DispositionRecorded,
    FormSubmitted,
    LeadAssigned,
    LeadIdentified,
    LeadQualified,
    LeadScored,
    LeadStatus,
    ScoreReason,
    VisitorActivityRecorded,
)
from leadrelay.events import Visitor as VisitorRef
from leadrelay.logging import get_logger
from scoring.domain import (
    Join,
    add_consent,
    after_disposition,
    count_activity,
    counts_since,
    decide,
    evaluate,
    join,
    owner_changes,
    profile_fields,
    repeated_submission,
    score_event_due,
    with_facts,
)
from scoring.models import Activity, Lead, Visitor, VisitorActivity
from scoring.repository import History

log = get_logger("scoring")


@dataclass
class Batch(consumers.Batch):
    """What handling a batch of events needs: its transaction, the rules, and the batch's leads
    and recent history (kept current in memory as the batch goes)."""

    leads: dict[str, Lead]
    history: History
    # The batch's visitors, locked, and the activities kept for those not joined yet.
    visitors: dict[str, Visitor] = field(default_factory=dict)
    kept: dict[str, list[VisitorActivity]] = field(default_factory=dict)
    # This batch's new activities sort after the database's (whose order is their id).
    next_order: int = 1 << 62

    def lead(self, lead_id: str) -> Lead:
        """The lead, created (status ``lead``, nothing known) if this is its first event."""
        lead = self.leads.get(lead_id)
        if lead is None:
            now = self.uow.now
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
            self.uow.session.add(lead)
            self.leads[lead_id] = lead
        return lead

    def recent(self, lead_id: str, limit: int) -> list[ActivitySummary]:
        """The lead's last ``limit`` activities, oldest first, including this batch's."""
        entries = sorted(self.history.get(lead_id, []), key=lambda e: (e[0], e[1]))
        return [summary for _, _, summary in entries[-limit:]]


async def form_submitted(batch: Batch, event: FormSubmitted) -> None:
    lead = batch.lead(event.lead_id)
    # The newest submission wins field by field; fields it leaves empty keep what we knew.
    merged = dict(lead.contact or {})
    merged.update(event.contact.model_dump(exclude_none=True))
    lead.contact = merged
    lead.email = event.contact.email
    lead.custom = {**(lead.custom or {}), **event.custom}
    if event.consent is not None:
        lead.consent = add_consent(lead.consent, event.consent.model_dump(mode="json"))
    defn = batch.rules.lead_definition
    recent = batch.recent(lead.lead_id, defn.history_limit)
    if repeated_submission(recent, event.form_id, event.submitted_at, defn.duplicate_window):
        # Recorded once: the profile takes the newer details, the submission earns nothing again.
        log.info("repeated_submission", lead_id=lead.lead_id, form_id=event.form_id)
        rescore(batch, lead)
        return
    form = batch.rules.form(event.form_id)
    if form is not None and form.handraiser and counts_since(event.submitted_at, lead.engagement_since):
        lead.handraised_at = event.submitted_at
    await _join(batch, lead, event.visitors, event.submitted_at)
    _record(batch, lead, ActivityType.FORM_SUBMITTED, event.submitted_at, event.page_url, event.form_id)


async def activity_recorded(batch: Batch, event: ActivityRecorded) -> None:
    lead = batch.lead(event.lead_id)
    if event.email and not lead.email:
        lead.email = event.email
        lead.contact = {**(lead.contact or {}), "email": event.email}
    _credit(batch, lead, event.activity, event.occurred_at, event.url, _detail(event.properties))
    rescore(batch, lead)


def _detail(properties: dict[str, str]) -> str | None:
    return properties.get("title") or properties.get("name")


async def lead_identified(batch: Batch, event: LeadIdentified) -> None:
    """An identify (alias, group) of a lead known by e-mail: its traits update the profile, the
    visitors it names join the lead with the activities kept for them, and it is rescored."""
    lead = batch.lead(event.lead_id)
    merged = dict(lead.contact or {})
    merged.update(event.contact.model_dump(exclude_none=True))
    lead.contact = merged
    lead.email = event.contact.email
    lead.custom = {**(lead.custom or {}), **event.custom}
    await _join(batch, lead, event.visitors, event.identified_at)
    rescore(batch, lead)


async def visitor_activity_recorded(batch: Batch, event: VisitorActivityRecorded) -> None:
    """A visitor's activity: credited to its lead once joined, else kept for the visitor (its row is
    locked for the batch, so a join running at the same time waits, then finds it)."""
    visitor = batch.visitors[event.visitor.key]
    detail = _detail(event.properties)
    if visitor.lead_id is not None:
        lead = batch.lead(visitor.lead_id)
        _credit(batch, lead, event.activity, event.occurred_at, event.url, detail)
        rescore(batch, lead)
        return
    kept = VisitorActivity(
        visitor=visitor.visitor,
        type=event.activity.value,
        occurred_at=event.occurred_at,
        url=event.url,
        detail=detail[:200] if detail else detail,
    )
    batch.uow.session.add(kept)
    batch.kept.setdefault(visitor.visitor, []).append(kept)


async def _join(batch: Batch, lead: Lead, visitors: list[VisitorRef], at: datetime) -> None:
    """Join each visitor to the lead (``domain.join``) and credit the activities kept for it, as if
    the lead had been known when they happened; the caller rescores once."""
    session = batch.uow.session
    for ref in visitors:
        visitor = batch.visitors[ref.key]
        outcome = join(visitor.lead_id, lead.lead_id)
        if outcome is Join.OTHER:
            log.info("visitor_joined_elsewhere", visitor=ref.key, lead_id=lead.lead_id, joined_to=visitor.lead_id)
        if outcome is not Join.JOIN:
            continue
        visitor.lead_id, visitor.linked_at = lead.lead_id, at
        for kept in batch.kept.pop(ref.key, []):
            _credit(batch, lead, ActivityType(kept.type), kept.occurred_at, kept.url, kept.detail)
            if kept in session.new:
                session.expunge(kept)
            else:
                # Deleted in the join's transaction: credited once, and only once.
                await session.delete(kept)


def _credit(
    batch: Batch, lead: Lead, activity: ActivityType, occurred_at: datetime, url: str | None, detail: str | None
) -> None:
    """Record an activity of the lead: a handraiser activity hands it over, engagement counts it."""
    defn = batch.rules.lead_definition
    if activity in defn.handraiser_activities and counts_since(occurred_at, lead.engagement_since):
        lead.handraised_at = occurred_at
    _record(batch, lead, activity, occurred_at, url, detail, rescore_now=False)


def _record(
    batch: Batch,
    lead: Lead,
    activity: ActivityType,
    occurred_at: datetime,
    url: str | None,
    detail: str | None,
    rescore_now: bool = True,
) -> None:
    detail = detail[:200] if detail else detail  # Activity.detail's width: a title, not a document
    batch.uow.session.add(
        Activity(lead_id=lead.lead_id, type=activity.value, occurred_at=occurred_at, url=url, detail=detail)
    )
    summary = ActivitySummary(type=activity, occurred_at=occurred_at, url=url, detail=detail)
    batch.history[lead.lead_id].append((occurred_at, batch.next_order, summary))
    batch.next_order += 1
    if counts_since(occurred_at, lead.engagement_since):
        lead.engagement_counts = count_activity(
            batch.rules.lead_definition, lead.engagement_counts or {}, activity, url
        )
    if rescore_now:
        rescore(batch, lead)


async def disposition_recorded(batch: Batch, event: DispositionRecorded) -> None:
    """Sales' verdict moves the lead (see ``domain.after_disposition``)."""
    lead = batch.leads.get(event.lead_id)
    if lead is None:
        log.warning("disposition_for_unknown_lead", lead_id=event.lead_id)
        return
    effect = after_disposition(event.disposition)
    lead.status = effect.status.value
    if effect.restart_engagement:
        lead.engagement_since = event.recorded_at
        lead.engagement_counts = {}
        lead.handraised_at = None
    rescore(batch, lead, force_event=True)


async def lead_assigned(batch: Batch, event: LeadAssigned) -> None:
    """Record who owns the lead (``domain.owner_changes``), so its score is shown to its rep,
    their managers, ops and admins only."""
    lead = batch.leads.get(event.lead_id)
    if lead is None:
        # Scoring qualified the lead before routing assigned it, so it knows it, unless its
        # state was reset; the owner is then unknown and only ops and admins see the lead.
        log.warning("assignment_for_unknown_lead", lead_id=event.lead_id, rep_id=event.rep_id)
        return
    if owner_changes(lead.assigned_cycle, event.cycle):
        lead.rep_id = event.rep_id
        lead.territory = event.territory
        lead.assigned_cycle = event.cycle


def rescore(batch: Batch, lead: Lead, force_event: bool = False) -> None:
    uow, defn = batch.uow, batch.rules.lead_definition
    contact = with_facts(Contact.model_validate(lead.contact)) if lead.contact and lead.contact.get("email") else None
    handraiser = lead.handraised_at is not None
    ev = evaluate(defn, profile_fields(contact, lead.custom or {}), lead.engagement_counts or {}, handraiser)
    previous = LeadStatus(lead.status)
    status, qualification = decide(previous, ev, defn.threshold, ev.handraiser, reachable=contact is not None)
    before = (lead.score, lead.fit, lead.status)
    lead.fit, lead.engagement, lead.status = ev.fit, ev.engagement, status.value
    lead.reasons = [r.model_dump() for r in ev.reasons]
    lead.score = ev.score
    lead.updated_at = uow.now
    new_lead = lead.cycle == 0 and lead.created_at == uow.now
    if score_event_due(before, (ev.score, ev.fit, status.value), force_event, new_lead):
        uow.emit(
            batch.envelope(
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
        uow.emit(
            batch.envelope(
                LeadQualified(
                    lead_id=lead.lead_id,
                    qualification=qualification,
                    cycle=lead.cycle,
                    score=ev.score,
                    reasons=ev.reasons,
                    contact=contact,
                    custom=lead.custom or {},
                    activities=batch.recent(lead.lead_id, defn.history_limit),
                    qualified_at=uow.now,
                    consent=[ConsentEvidence.model_validate(c) for c in lead.consent or []],
                )
            )
        )
        log.info("lead_qualified", lead_id=lead.lead_id, qualification=qualification.value, score=ev.score)


def reasons_of(lead: Lead) -> list[ScoreReason]:
    return [ScoreReason.model_validate(r) for r in lead.reasons or []]
