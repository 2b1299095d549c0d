"""Closed-loop metrics from what sales did with the leads it was handed. Pure."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime

from leadrelay.events import Disposition

# Sales must give a reason when it hands a lead back or throws it away (the review board reads them).
REASON_REQUIRED = {d for d in Disposition if d.needs_reason}


@dataclass(frozen=True)
class LeadOutcome:
    assigned_at: datetime
    first_touch_at: datetime | None
    touches: int
    disposition: str | None


def funnel(outcomes: list[LeadOutcome]) -> dict[str, object]:
    handed = len(outcomes)
    touched = [o for o in outcomes if o.first_touch_at is not None]
    by_disposition = {d.value: sum(1 for o in outcomes if o.disposition == d.value) for d in Disposition}
    with_status = sum(by_disposition.values())
    delays = [(o.first_touch_at - o.assigned_at).total_seconds() for o in touched if o.first_touch_at]
    return {
        "handed_to_sales": handed,
        "touched": len(touched),
        "never_touched": handed - len(touched),
        "dispositions": by_disposition,
        "awaiting_disposition": handed - with_status,
        "acceptance_rate": round(by_disposition["accepted"] / with_status, 4) if with_status else None,
        "median_seconds_to_first_touch": statistics.median(delays) if delays else None,
        "p90_seconds_to_first_touch": _percentile(delays, 90),
        "p95_seconds_to_first_touch": _percentile(delays, 95),
        "mean_touches": round(sum(o.touches for o in outcomes) / handed, 2) if handed else None,
    }


def _percentile(values: list[float], p: int) -> float | None:
    """The ``p``-th percentile (inclusive method: within the observed range); one value is its own."""
    if len(values) >= 2:
        return statistics.quantiles(values, n=100, method="inclusive")[p - 1]
    return values[0] if values else None


# What the review board shows: every verdict except an acceptance.
REVIEWED = tuple(d for d in Disposition if d.closes_assignment)


def supersedes(known_cycle: int | None, cycle: int) -> bool:
    """An assignment replaces what feedback knew of the lead only if it is of a newer qualification
    cycle (a redelivered or older one changes nothing); its touches and verdict start afresh."""
    return known_cycle is None or cycle > known_cycle
