"""feedback.domain: closed-loop funnel metrics from what sales did with its leads (pure)."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest

from feedback.domain import REASON_REQUIRED, LeadOutcome, funnel
from leadrelay.events import Disposition

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def outcome(
    touch_after_min: float | None = None,
    disposition: str | None = None,
    touches: int | None = None,
    assigned_at: datetime = T0,
) -> LeadOutcome:
    first = None if touch_after_min is None else assigned_at + timedelta(minutes=touch_after_min)
    if touches is None:
        touches = 0 if first is None else 1
    return LeadOutcome(assigned_at=assigned_at, first_touch_at=first, touches=touches, disposition=disposition)


def test_no_leads_at_all() -> None:
    assert funnel([]) == {
        "handed_to_sales": 0,
        "touched": 0,
        "never_touched": 0,
        "dispositions": {"accepted": 0, "recycle": 0, "junk": 0, "unreachable": 0},
        "awaiting_disposition": 0,
        "acceptance_rate": None,
        "median_seconds_to_first_touch": None,
        "p90_seconds_to_first_touch": None,
        "p95_seconds_to_first_touch": None,
        "mean_touches": None,
    }


def test_a_mixed_funnel() -> None:
    m = funnel(
        [
            outcome(10, "accepted", touches=3),
            outcome(20, "junk", touches=1),
            outcome(None),
            outcome(30, "recycle", touches=2),
            outcome(40, "accepted", touches=4),
            outcome(None, "unreachable"),
            outcome(50, None, touches=1),
        ]
    )
    assert m["handed_to_sales"] == 7
    assert m["touched"] == 5
    assert m["never_touched"] == 2
    assert m["dispositions"] == {"accepted": 2, "recycle": 1, "junk": 1, "unreachable": 1}
    assert m["awaiting_disposition"] == 2
    assert m["acceptance_rate"] == 0.4  # 2 accepted of the 5 with a status
    assert m["median_seconds_to_first_touch"] == 30 * 60
    assert m["mean_touches"] == round(11 / 7, 2)


def test_acceptance_rate_counts_only_leads_with_a_status() -> None:
    m = funnel([outcome(5, "accepted"), outcome(5, "accepted"), outcome(5, "junk"), outcome(5), outcome(5)])
    assert m["acceptance_rate"] == round(2 / 3, 4)
    assert m["awaiting_disposition"] == 2


def test_acceptance_rate_is_none_while_nothing_has_a_status() -> None:
    m = funnel([outcome(5), outcome(None)])
    assert m["acceptance_rate"] is None
    assert m["awaiting_disposition"] == 2


def test_acceptance_rate_zero_and_one() -> None:
    assert funnel([outcome(None, "unreachable"), outcome(3, "junk")])["acceptance_rate"] == 0.0
    assert funnel([outcome(3, "accepted")])["acceptance_rate"] == 1.0


def test_unknown_disposition_is_not_counted_as_a_status() -> None:
    m = funnel([outcome(5, "maybe-later"), outcome(5, "accepted")])
    assert sum(m["dispositions"].values()) == 1  # type: ignore[attr-defined]
    assert m["awaiting_disposition"] == 1


def test_median_time_to_first_touch_odd_and_even() -> None:
    assert funnel([outcome(m) for m in (1, 2, 60)])["median_seconds_to_first_touch"] == 120
    assert funnel([outcome(m) for m in (1, 2, 3, 60)])["median_seconds_to_first_touch"] == 150


def test_untouched_leads_do_not_count_in_time_to_first_touch() -> None:
    m = funnel([outcome(4), outcome(None), outcome(None), outcome(None)])
    assert m["median_seconds_to_first_touch"] == 240
    assert m["p90_seconds_to_first_touch"] == 240
    assert m["p95_seconds_to_first_touch"] == 240


def test_single_touched_lead_is_its_own_p90() -> None:
    m = funnel([outcome(90)])
    assert m["median_seconds_to_first_touch"] == 5400
    assert m["p90_seconds_to_first_touch"] == 5400
    assert m["p95_seconds_to_first_touch"] == 5400


def test_p90_of_many_leads() -> None:
    delays_min = list(range(1, 101))  # 1..100 minutes
    m = funnel([outcome(d) for d in delays_min])
    p90 = m["p90_seconds_to_first_touch"]
    assert isinstance(p90, float)
    assert 89 * 60 <= p90 <= 91 * 60
    assert m["median_seconds_to_first_touch"] == 50.5 * 60


def test_p90_uses_each_leads_own_assignment_time() -> None:
    m = funnel([outcome(10, assigned_at=T0), outcome(10, assigned_at=T0 + timedelta(days=3))])
    assert m["median_seconds_to_first_touch"] == 600
    assert m["p90_seconds_to_first_touch"] == 600


@pytest.mark.parametrize("delays_min", [[1, 2], [10, 20, 30, 40]])
def test_p90_never_exceeds_the_slowest_first_touch(delays_min: list[float]) -> None:
    m = funnel([outcome(d) for d in delays_min])
    p90 = m["p90_seconds_to_first_touch"]
    assert isinstance(p90, float | int)
    assert statistics.median(delays_min) * 60 <= p90 <= max(delays_min) * 60


def test_reason_required_for_recycle_and_junk_only() -> None:
    assert {Disposition.RECYCLE, Disposition.JUNK} == REASON_REQUIRED


def test_only_a_newer_cycle_replaces_what_feedback_knew() -> None:
    from feedback.domain import REVIEWED, supersedes

    assert supersedes(None, 1)
    assert supersedes(1, 2)
    assert not supersedes(2, 2)
    assert not supersedes(3, 2)
    assert Disposition.ACCEPTED not in REVIEWED and set(REVIEWED) == set(Disposition) - {Disposition.ACCEPTED}


def test_p95_of_many_leads() -> None:
    # 1..100 minutes: the inclusive 95th percentile is at rank 0.95 * 99 = 94.05 -> 95.05 minutes.
    m = funnel([outcome(d) for d in range(1, 101)])
    p95 = m["p95_seconds_to_first_touch"]
    assert isinstance(p95, float)
    assert p95 == pytest.approx(95.05 * 60)
    assert m["p90_seconds_to_first_touch"] == pytest.approx(90.1 * 60)


def test_p95_sees_the_slow_tail_the_median_hides() -> None:
    m = funnel([outcome(5)] * 18 + [outcome(600), outcome(900)])
    assert m["median_seconds_to_first_touch"] == 5 * 60
    assert m["p95_seconds_to_first_touch"] > 600 * 60
