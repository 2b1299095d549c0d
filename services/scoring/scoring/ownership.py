"""Who owns a lead, as scoring learns it from ``leads.assigned``: the rep and territory of its
latest assignment. Scoring needs it to answer only the lead's rep, their managers, ops and
admins (it never calls routing for that)."""

from __future__ import annotations

from leadrelay.db import UnitOfWork
from leadrelay.events import LeadAssigned
from leadrelay.logging import get_logger
from scoring.models import Lead

log = get_logger("scoring")


async def lead_assigned(uow: UnitOfWork, event: LeadAssigned, leads: dict[str, Lead]) -> None:
    """Record the owner; an older cycle delivered late never overwrites a newer one."""
    lead = leads.get(event.lead_id)
    if lead is None:
        # Scoring qualified the lead before routing assigned it, so it knows it, unless its
        # state was reset; the owner is then unknown and only ops and admins see the lead.
        log.warning("assignment_for_unknown_lead", lead_id=event.lead_id, rep_id=event.rep_id)
        return
    if lead.assigned_cycle is not None and lead.assigned_cycle > event.cycle:
        return
    lead.rep_id = event.rep_id
    lead.territory = event.territory
    lead.assigned_cycle = event.cycle
