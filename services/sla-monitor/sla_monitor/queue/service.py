"""The reps' queue's use cases: an assignment replaces the lead's row, feedback updates it (in the
batch's unit of work, with the clocks; the rules are in ``sla_monitor.queue.domain``)."""

from __future__ import annotations

from datetime import datetime

from leadrelay.events import LeadAssigned
from leadrelay.unit_of_work import UnitOfWork
from sla_monitor.clocks.domain import Seen
from sla_monitor.models import QueuedLead
from sla_monitor.queue import domain


def assigned(
    uow: UnitOfWork, rows: dict[str, QueuedLead], event: LeadAssigned, due: dict[str, datetime], seen: list[Seen]
) -> None:
    """A new cycle replaces the lead's row (``rows``: the batch's, see ``repository.queued_of``)."""
    row = rows.get(event.lead_id)
    if not domain.replaces(row, event.cycle):
        return
    if row is None:
        row = rows[event.lead_id] = QueuedLead(lead_id=event.lead_id)
        uow.session.add(row)
    domain.assign(
        row, event.lead_id, event.cycle, event.rep_id, event.territory, event.assigned_at, event.handoff, due, seen
    )


def feedback(rows: dict[str, QueuedLead], lead_id: str, kind: str, at: datetime, detail: str | None) -> None:
    row = rows.get(lead_id)
    if row is not None:
        domain.apply_feedback(row, kind, at, detail)
