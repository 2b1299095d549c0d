"""sla_monitor.clocks.domain: the deadlines an assignment starts and what stops them (pure, time passed in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from leadrelay.events import Qualification
from leadrelay.rules import Sla, load_rules
from sla_monitor.clocks.domain import (
    BREACHED,
    DISPOSITION,
    FIRST_TOUCH,
    MET,
    RUNNING,
    attainment,
    clocks_stopped_by,
    deadlines,
)
from sla_monitor.queue import domain as queue

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
STOCKHOLM = timezone(timedelta(hours=2), "CEST")


def sla(first_touch: str, disposition: str) -> Sla:
    policy = {"first_touch": first_touch, "disposition": disposition}
    return Sla.model_validate({"mql": policy, "handraiser": policy})


@pytest.fixture(scope="module")
def example() -> Sla:
    return load_rules(EXAMPLE).sla


def test_handraiser_deadlines_from_the_example(example: Sla) -> None:
    assigned = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
    assert deadlines(example, Qualification.HANDRAISER, assigned) == {
        FIRST_TOUCH: datetime(2026, 5, 4, 10, 30, tzinfo=UTC),
        DISPOSITION: datetime(2026, 5, 6, 9, 30, tzinfo=UTC),
    }


def test_mql_deadlines_from_the_example(example: Sla) -> None:
    assigned = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
    assert deadlines(example, Qualification.MQL, assigned) == {
        FIRST_TOUCH: datetime(2026, 5, 6, 9, 30, tzinfo=UTC),
        DISPOSITION: datetime(2026, 5, 9, 9, 30, tzinfo=UTC),
    }


def test_handraisers_get_the_tighter_clock(example: Sla) -> None:
    assigned = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    h = deadlines(example, Qualification.HANDRAISER, assigned)
    m = deadlines(example, Qualification.MQL, assigned)
    assert h[FIRST_TOUCH] < m[FIRST_TOUCH]
    assert h[DISPOSITION] < m[DISPOSITION]
    assert h[FIRST_TOUCH] == datetime(2027, 1, 1, 0, 0, tzinfo=UTC)  # across the new year


def test_deadlines_keep_the_timezone_of_the_assignment(example: Sla) -> None:
    assigned = datetime(2026, 5, 4, 16, 45, tzinfo=STOCKHOLM)
    due = deadlines(example, Qualification.HANDRAISER, assigned)
    assert due[FIRST_TOUCH] == datetime(2026, 5, 4, 15, 45, tzinfo=UTC)
    assert due[FIRST_TOUCH].utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(
    ("first_touch", "disposition", "touch_after", "disposition_after"),
    [
        ("30m", "2s", timedelta(minutes=30), timedelta(seconds=2)),
        ("PT1H", "P2D", timedelta(hours=1), timedelta(days=2)),
        ("1.5h", "1w", timedelta(minutes=90), timedelta(weeks=1)),
    ],
)
def test_deadlines_follow_the_policy_durations(
    first_touch: str, disposition: str, touch_after: timedelta, disposition_after: timedelta
) -> None:
    assigned = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    due = deadlines(sla(first_touch, disposition), Qualification.MQL, assigned)
    assert due == {FIRST_TOUCH: assigned + touch_after, DISPOSITION: assigned + disposition_after}


def test_a_touch_stops_only_the_first_touch_clock() -> None:
    assert clocks_stopped_by("touch") == (FIRST_TOUCH,)


def test_a_disposition_stops_both_clocks() -> None:
    assert set(clocks_stopped_by("disposition")) == {FIRST_TOUCH, DISPOSITION}
    assert len(clocks_stopped_by("disposition")) == 2


def test_clock_names_are_stable_identifiers() -> None:
    assert FIRST_TOUCH == "first_touch"
    assert DISPOSITION == "disposition"


def test_feedback_seen_before_an_assignment_arrives_counts_from_the_assignment_time() -> None:
    from sla_monitor.clocks.domain import stopped_before_start

    assigned = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    assert stopped_before_start([], assigned) == set()
    assert stopped_before_start([("touch", assigned + timedelta(minutes=3), None)], assigned) == {FIRST_TOUCH}
    assert stopped_before_start([("disposition", assigned, "accepted")], assigned) == {FIRST_TOUCH, DISPOSITION}
    # Feedback of an earlier cycle (before this assignment) stops nothing.
    assert stopped_before_start([("disposition", assigned - timedelta(days=3), "recycle")], assigned) == set()


def test_attainment_is_the_share_met_of_the_deadlines_decided() -> None:
    out = attainment({(FIRST_TOUCH, MET): 9, (FIRST_TOUCH, BREACHED): 1, (FIRST_TOUCH, RUNNING): 5})
    assert out[FIRST_TOUCH] == {"met": 9, "breached": 1, "running": 5, "attainment": 0.9}
    # Nothing decided yet: no attainment rather than 0% or 100%.
    assert out[DISPOSITION] == {"met": 0, "breached": 0, "running": 0, "attainment": None}


def test_attainment_zero_and_one() -> None:
    assert attainment({(DISPOSITION, BREACHED): 3})[DISPOSITION]["attainment"] == 0.0
    assert attainment({(DISPOSITION, MET): 2, (DISPOSITION, RUNNING): 7})[DISPOSITION]["attainment"] == 1.0


# ------------------------------------------------------------------ sla_monitor.queue.domain


@dataclass
class Row:
    """A queue row without a database (``QueueRow``'s fields)."""

    lead_id: str = "lead-1"
    cycle: int = 1
    rep_id: str = "astrid.lindqvist"
    territory: str = "nordics"
    qualification: str | None = "mql"
    assigned_at: datetime = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    first_touch_due: datetime = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    disposition_due: datetime = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
    handoff: dict[str, Any] | None = None
    score: int | None = None
    contact: dict[str, Any] | None = None
    touches: int = 0
    first_touch_at: datetime | None = None
    last_touch_at: datetime | None = None
    disposition: str | None = None
    disposition_at: datetime | None = None
    open: bool = True


def test_only_a_newer_cycle_replaces_the_queue_row() -> None:
    assert queue.replaces(None, 1)
    assert queue.replaces(Row(cycle=1), 2)
    assert not queue.replaces(Row(cycle=2), 2)
    assert not queue.replaces(Row(cycle=3), 2)


def test_feedback_moves_the_row_and_its_next_deadline() -> None:
    row = Row()
    assigned = row.assigned_at
    first = queue.item(row, assigned + timedelta(minutes=30))
    assert (first["status"], first["next_deadline"]["name"], first["next_deadline"]["status"]) == (
        "new",
        FIRST_TOUCH,
        "running",
    )
    assert queue.item(row, assigned + timedelta(hours=2))["next_deadline"]["status"] == "breached"
    queue.apply_feedback(row, "touch", assigned - timedelta(minutes=1), None)  # an earlier cycle's
    assert row.touches == 0
    queue.apply_feedback(row, "touch", assigned + timedelta(minutes=10), None)
    touched = queue.item(row, assigned + timedelta(minutes=30))
    assert (touched["status"], touched["touches"], touched["next_deadline"]["name"]) == ("touched", 1, DISPOSITION)
    queue.apply_feedback(row, "disposition", assigned + timedelta(hours=1), "accepted")
    accepted = queue.item(row, assigned + timedelta(hours=2))
    assert (accepted["status"], accepted["next_deadline"], row.open) == ("accepted", None, True)
    queue.apply_feedback(row, "disposition", assigned + timedelta(hours=3), "recycle")
    assert (row.disposition, row.open) == ("recycle", False)  # a closing disposition leaves the queue
