"""The lead definition applied: fit, engagement, handraisers, disqualifiers, and the status they give.

Pure: no I/O, time passed in. Fit is recomputed from the profile each time;
engagement is kept as per-rule counts of matching activities since the lead
last came back to marketing, so a recycled lead must show fresh interest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from leadrelay.emails import facts
from leadrelay.events import ActivitySummary, ActivityType, Contact, Disposition, LeadStatus, Qualification, ScoreReason
from leadrelay.rules import EngagementRule, LeadDefinition

# Statuses in which marketing owns the lead and a qualification can happen.
NURTURE = {LeadStatus.LEAD, LeadStatus.RECYCLED, LeadStatus.DISQUALIFIED}


def with_facts(contact: Contact) -> Contact:
    """The contact with its clean-data facts (``email_type``, ``company_domain``) derived from its
    current address and website (``leadrelay.emails``), whatever an older event carried."""
    return contact.model_copy(update=facts(contact.email, contact.website))


def profile_fields(contact: Contact | None, custom: dict[str, str]) -> dict[str, Any]:
    """The fields the definition's conditions can name: contact fields, email_domain, the clean-data
    facts (email_type, company_domain), custom attributes."""
    fields: dict[str, Any] = dict(custom)
    if contact is not None:
        fields.update(with_facts(contact).model_dump())
        fields["email_domain"] = contact.email_domain
    return fields


def rule_matches(rule: EngagementRule, activity: ActivityType, url: str | None) -> bool:
    if activity not in rule.activity:
        return False
    if not rule.url_contains:
        return True
    return url is not None and any(part.lower() in url.lower() for part in rule.url_contains)


def count_activity(
    definition: LeadDefinition, counts: dict[str, int], activity: ActivityType, url: str | None
) -> dict[str, int]:
    out = dict(counts)
    for rule in definition.engagement:
        if rule_matches(rule, activity, url):
            out[rule.name] = out.get(rule.name, 0) + 1
    return out


@dataclass(frozen=True)
class Evaluation:
    fit: int
    engagement: int
    reasons: list[ScoreReason]
    disqualified_by: str | None
    # A handraise that counts: asked for sales and met the definition's handraiser_requires.
    handraiser: bool = False

    @property
    def score(self) -> int:
        return self.fit + self.engagement


def evaluate(
    definition: LeadDefinition, fields: dict[str, Any], counts: dict[str, int], handraiser: bool
) -> Evaluation:
    reasons: list[ScoreReason] = []
    fit = 0
    for fit_rule in definition.fit:
        if all(c.test(fields.get(c.field)) for c in fit_rule.when):
            fit += fit_rule.points
            reasons.append(ScoreReason(rule=fit_rule.name, category="fit", points=fit_rule.points))
    engagement = 0
    for rule in definition.engagement:
        n = counts.get(rule.name, 0)
        if n:
            points = n * rule.points
            if rule.max_points is not None:
                points = min(points, rule.max_points)
            engagement += points
            reasons.append(ScoreReason(rule=f"{rule.name} (x{n})", category="engagement", points=points))
    if handraiser:
        unmet = [c.field for c in definition.handraiser_requires if not c.test(fields.get(c.field))]
        if unmet:
            # e.g. a free-mail "contact sales": not handed over at once, it must qualify on its score.
            why = f"asked for sales, not handed over at once: {', '.join(unmet)} not as handraiser_requires"
            reasons.append(ScoreReason(rule=why, category="handraiser", points=0))
            handraiser = False
        else:
            reasons.append(ScoreReason(rule="asked for sales (handraiser)", category="handraiser", points=0))
    disqualified_by = None
    for dq in definition.disqualify:
        if all(c.test(fields.get(c.field)) for c in dq.when):
            disqualified_by = dq.name
            reasons.append(ScoreReason(rule=dq.name, category="disqualifier", points=0))
            break
    return Evaluation(
        fit=fit, engagement=engagement, reasons=reasons, disqualified_by=disqualified_by, handraiser=handraiser
    )


def decide(
    current: LeadStatus, evaluation: Evaluation, threshold: int, handraiser: bool, reachable: bool
) -> tuple[LeadStatus, Qualification | None]:
    """The lead's next status, and the qualification that hands it to sales (None: no handoff now).

    Only a lead marketing owns can qualify; one sales is working keeps its status
    while its score moves. A disqualifier beats a handraiser (a competitor asking
    for a demo is still a competitor). ``reachable``: sales needs an address.
    """
    if current not in NURTURE:
        return current, None
    if evaluation.disqualified_by is not None:
        return LeadStatus.DISQUALIFIED, None
    if reachable and handraiser:
        return LeadStatus.HANDRAISER, Qualification.HANDRAISER
    if reachable and evaluation.score >= threshold:
        return LeadStatus.MQL, Qualification.MQL
    return (LeadStatus.RECYCLED if current is LeadStatus.RECYCLED else LeadStatus.LEAD), None


# Statuses in which sales has (or had) taken the lead as qualified.
QUALIFIED = {LeadStatus.MQL, LeadStatus.HANDRAISER, LeadStatus.ACCEPTED}


def is_qualified(status: LeadStatus) -> bool:
    """What "qualified" means on the API: handed to sales as an MQL or handraiser, or accepted."""
    return status in QUALIFIED


def counts_since(when: datetime, since: datetime | None) -> bool:
    """An activity or handraise counts only if it happened since the lead last came back to marketing."""
    return since is None or when >= since


@dataclass(frozen=True)
class DispositionEffect:
    status: LeadStatus
    # Back to marketing: it must show readiness again, so engagement and the handraise start over.
    restart_engagement: bool


def after_disposition(disposition: Disposition) -> DispositionEffect:
    """What sales' verdict does to the lead: accepted stays with sales, junk closes it, recycle and
    unreachable send it back to marketing to be nurtured."""
    return DispositionEffect(disposition.lead_status, restart_engagement=disposition.returns_to_marketing)


def score_event_due(before: tuple[int, int, str], after: tuple[int, int, str], forced: bool, new_lead: bool) -> bool:
    """A ``lead_scored`` event is emitted when the score, fit or status changed, when a verdict
    forces one (a disposition), and for the first event of a new lead."""
    return before != after or forced or new_lead


def owner_changes(known_cycle: int | None, cycle: int) -> bool:
    """Scoring learns a lead's owner (who may see it) from its assignments; an older cycle
    delivered late never overwrites a newer one."""
    return known_cycle is None or cycle >= known_cycle


def repeated_submission(recent: list[ActivitySummary], form_id: str, at: datetime, window: timedelta) -> bool:
    """The lead submitted this form already within ``window`` before ``at`` (a double click, a
    resend): recorded once, so it earns no second score. ``recent`` is the lead's recent history."""
    return any(
        a.type is ActivityType.FORM_SUBMITTED and a.detail == form_id and timedelta(0) <= at - a.occurred_at <= window
        for a in recent
    )


MAX_CONSENT = 20  # evidence kept per lead: the newest


def add_consent(kept: list[dict[str, Any]] | None, evidence: dict[str, Any]) -> list[dict[str, Any]]:
    """The lead's consent evidence with ``evidence`` added (the newest ``MAX_CONSENT``)."""
    return [*(kept or []), evidence][-MAX_CONSENT:]


class Join(StrEnum):
    """What a join (identify, a form with a visitor id, an alias) does to a visitor."""

    JOIN = "join"  # not joined yet: its kept activities move to the lead, its later ones go there
    ALREADY = "already"  # joined to this lead before (a repeat): nothing to move
    OTHER = "other"  # joined to another lead: the first join stands (shared devices, a colleague's form)


def join(joined_to: str | None, lead_id: str) -> Join:
    """A visitor is one person: it joins the first lead that claims it and stays with it."""
    if joined_to is None:
        return Join.JOIN
    return Join.ALREADY if joined_to == lead_id else Join.OTHER
