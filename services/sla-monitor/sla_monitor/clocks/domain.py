"""SLA clocks' rules: which deadlines an assignment starts, and what a touch or a disposition stops.

Two clocks per assignment, from the SLA policy of its qualification
(handraisers get the tighter one): ``first_touch`` (a touch by the deadline)
and ``disposition`` (a status from sales by the deadline). A touch meets
``first_touch``; a disposition meets both (it implies contact was attempted).
"""

from __future__ import annotations

from datetime import datetime

from leadrelay.events import Qualification, SlaClockName
from leadrelay.rules import Sla

FIRST_TOUCH = SlaClockName.FIRST_TOUCH.value
DISPOSITION = SlaClockName.DISPOSITION.value
RUNNING, MET, BREACHED = "running", "met", "breached"


def deadlines(sla: Sla, qualification: Qualification, assigned_at: datetime) -> dict[str, datetime]:
    policy = sla.policy(qualification)
    return {FIRST_TOUCH: assigned_at + policy.first_touch, DISPOSITION: assigned_at + policy.disposition}


# Feedback seen for a lead: kind (touch, disposition), when, the disposition.
Seen = tuple[str, datetime, str | None]


def clocks_stopped_by(kind: str) -> tuple[str, ...]:
    return (FIRST_TOUCH,) if kind == "touch" else (FIRST_TOUCH, DISPOSITION)


TOUCH = "touch"
DISPOSITION_KIND = "disposition"


def stopped_before_start(seen: list[Seen], assigned_at: datetime) -> set[str]:
    """Clocks already met when an assignment arrives: feedback travels on another topic and can
    overtake its assignment, so a touch or disposition seen at or after the assignment time counts."""
    return {name for kind, at, _ in seen if at >= assigned_at for name in clocks_stopped_by(kind)}


def attainment(counts: dict[tuple[str, str], int]) -> dict[str, dict[str, int | float | None]]:
    """Per clock (first touch, disposition): how many deadlines were met, breached or are still
    running, and the attainment: the share met of those decided (None while none is)."""
    out: dict[str, dict[str, int | float | None]] = {}
    for name in (FIRST_TOUCH, DISPOSITION):
        met, breached = counts.get((name, MET), 0), counts.get((name, BREACHED), 0)
        decided = met + breached
        out[name] = {
            "met": met,
            "breached": breached,
            "running": counts.get((name, RUNNING), 0),
            "attainment": round(met / decided, 4) if decided else None,
        }
    return out
