"""A rep's own queue: their open leads with the handoff summary and the next deadline (the rules of
the queue; its query is ``repository.open_queue``).

The SLA monitor answers it from its own state: it already receives every ``LeadAssigned`` (with
the handoff) and every touch and disposition, and owns the deadlines. One row per lead holds
its latest assignment; a touch or disposition updates it in the same transaction as the clocks.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from leadrelay.events import Disposition, Handoff, LeadAssigned
from leadrelay.unit_of_work import UnitOfWork
from sla_monitor.domain import DISPOSITION, FIRST_TOUCH
from sla_monitor.models import QueuedLead

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


def assigned(
    uow: UnitOfWork,
    rows: dict[str, QueuedLead],
    event: LeadAssigned,
    due: dict[str, datetime],
    seen: list[tuple[str, datetime, str | None]],
) -> None:
    """A new cycle replaces the lead's row; feedback that overtook the assignment is applied."""
    row = rows.get(event.lead_id)
    if row is not None and row.cycle >= event.cycle:
        return
    if row is None:
        row = QueuedLead(lead_id=event.lead_id)
        uow.session.add(row)
        rows[event.lead_id] = row
    row.cycle = event.cycle
    row.rep_id = event.rep_id
    row.territory = event.territory
    row.qualification = event.handoff.qualification.value
    row.assigned_at = event.assigned_at
    row.first_touch_due = due[FIRST_TOUCH]
    row.disposition_due = due[DISPOSITION]
    row.handoff = summary(event.handoff)
    row.touches = 0
    row.first_touch_at = row.last_touch_at = row.disposition = row.disposition_at = None
    row.open = True
    for kind, at, detail in sorted(seen, key=lambda s: s[1]):
        _apply(row, kind, at, detail)


def feedback(rows: dict[str, QueuedLead], lead_id: str, kind: str, at: datetime, detail: str | None) -> None:
    row = rows.get(lead_id)
    if row is not None:
        _apply(row, kind, at, detail)


def _apply(row: QueuedLead, kind: str, at: datetime, detail: str | None) -> None:
    if at < row.assigned_at:
        return  # feedback on an earlier cycle
    if kind == "touch":
        row.touches = (row.touches or 0) + 1
        row.first_touch_at = min(row.first_touch_at or at, at)
        row.last_touch_at = max(row.last_touch_at or at, at)
    elif row.disposition_at is None or at >= row.disposition_at:
        row.disposition = detail
        row.disposition_at = at
        row.open = detail not in CLOSING


def item(row: QueuedLead, now: datetime) -> dict[str, Any]:
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
