"""The rules of a rep's own queue: their open leads with the handoff summary and the next deadline.

The SLA monitor answers it from its own state: it already receives every ``LeadAssigned`` (with
the handoff) and every touch and disposition, and owns the deadlines. One row per lead holds
its latest assignment (the notifications read it too); a touch or disposition updates it in the
same transaction as the clocks. The rules take the row (anything with its fields: the table is
``sla_monitor.models.QueuedLead``) and values; the queries are in ``sla_monitor.queue.repository``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from leadrelay.events import Disposition, Handoff
from sla_monitor.clocks.domain import DISPOSITION, FIRST_TOUCH, TOUCH, Seen

# Dispositions that hand the lead back (or close it): it leaves the rep's queue.
CLOSING = {d.value for d in Disposition if d.closes_assignment}
LAST_ACTIVITIES = 3


class Stage(StrEnum):
    NEW = "new"  # not touched yet
    TOUCHED = "touched"  # touched, no disposition yet
    ACCEPTED = "accepted"  # accepted by sales, being worked


class DeadlineStatus(StrEnum):
    RUNNING = "running"
    BREACHED = "breached"


class QueueRow(Protocol):
    """A lead's latest assignment and what sales has done since (``QueuedLead``'s fields)."""

    lead_id: str
    cycle: int
    rep_id: str
    territory: str
    qualification: str | None
    assigned_at: datetime
    first_touch_due: datetime
    disposition_due: datetime
    handoff: dict[str, Any] | None
    score: int | None
    contact: dict[str, Any] | None
    touches: int
    first_touch_at: datetime | None
    last_touch_at: datetime | None
    disposition: str | None
    disposition_at: datetime | None
    open: bool


def summary(handoff: Handoff) -> dict[str, Any]:
    """What the rep needs at a glance; the full packet is at GET /v1/leads/{id}/assignment."""
    return {
        "contact": handoff.contact.model_dump(mode="json", exclude_none=True),
        "qualification": handoff.qualification.value,
        "score": handoff.score,
        "reasons": [r.model_dump(mode="json") for r in handoff.reasons],
        "account": handoff.account,
        "matched_by": handoff.matched_by,
        "last_activities": [
            a.model_dump(mode="json", exclude_none=True) for a in handoff.activities[-LAST_ACTIVITIES:]
        ],
    }


def replaces(row: QueueRow | None, cycle: int) -> bool:
    """Whether an assignment of ``cycle`` replaces the lead's row (a new cycle does; a repeat does not)."""
    return row is None or row.cycle < cycle


def assign(
    row: QueueRow,
    lead_id: str,
    cycle: int,
    rep_id: str,
    territory: str,
    assigned_at: datetime,
    handoff: Handoff,
    due: dict[str, datetime],
    seen: list[Seen],
) -> None:
    """Fill ``row`` with a new cycle's assignment; feedback that overtook the assignment is applied."""
    row.lead_id = lead_id
    row.cycle = cycle
    row.rep_id = rep_id
    row.territory = territory
    row.qualification = handoff.qualification.value
    row.assigned_at = assigned_at
    row.first_touch_due = due[FIRST_TOUCH]
    row.disposition_due = due[DISPOSITION]
    row.handoff = summary(handoff)
    # Who the lead is, for the notifications about it (the whole contact, as the handoff gave it).
    row.score = handoff.score
    row.contact = handoff.contact.model_dump(mode="json")
    row.touches = 0
    row.first_touch_at = row.last_touch_at = row.disposition = row.disposition_at = None
    row.open = True
    for kind, at, detail in sorted(seen, key=lambda s: s[1]):
        apply_feedback(row, kind, at, detail)


def apply_feedback(row: QueueRow, kind: str, at: datetime, detail: str | None) -> None:
    """A touch counts and dates the row; the latest disposition is the row's (a closing one takes the
    lead out of the queue); feedback older than the assignment belongs to an earlier cycle."""
    if at < row.assigned_at:
        return  # feedback on an earlier cycle
    if kind == TOUCH:
        row.touches = (row.touches or 0) + 1
        row.first_touch_at = min(row.first_touch_at or at, at)
        row.last_touch_at = max(row.last_touch_at or at, at)
    elif row.disposition_at is None or at >= row.disposition_at:
        row.disposition = detail
        row.disposition_at = at
        row.open = detail not in CLOSING


def item(row: QueueRow, now: datetime) -> dict[str, Any]:
    """The row as the rep's queue shows it: its stage and its next deadline at ``now``."""
    if row.disposition is not None:
        stage = Stage.ACCEPTED.value if row.disposition == Disposition.ACCEPTED.value else row.disposition
    else:
        stage = Stage.TOUCHED.value if row.first_touch_at is not None else Stage.NEW.value
    next_deadline = None
    if row.disposition is None:
        untouched = row.first_touch_at is None
        due = row.first_touch_due if untouched else row.disposition_due
        name = FIRST_TOUCH if untouched else DISPOSITION
        next_deadline = {
            "name": name,
            "due_at": due,
            "status": (DeadlineStatus.BREACHED if due <= now else DeadlineStatus.RUNNING).value,
            "seconds_left": round((due - now).total_seconds()),
        }
    return {
        "lead_id": row.lead_id,
        "cycle": row.cycle,
        "rep_id": row.rep_id,
        "territory": row.territory,
        "qualification": row.qualification,
        "assigned_at": row.assigned_at,
        "status": stage,
        "touches": row.touches,
        "first_touch_at": row.first_touch_at,
        "last_touch_at": row.last_touch_at,
        "next_deadline": next_deadline,
        "handoff": row.handoff,
    }
