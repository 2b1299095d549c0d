"""scoring.domain: fit, engagement, disqualifiers and the status they give (pure, no I/O)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leadrelay.events import ActivityType, Contact, LeadStatus, Qualification
from leadrelay.rules import LeadDefinition, load_rules
from scoring.domain import Evaluation, count_activity, decide, evaluate, profile_fields, rule_matches

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
PV = ActivityType.PAGE_VIEWED


def definition(**overrides: Any) -> LeadDefinition:
    """A small lead definition exercising every condition operator."""
    data: dict[str, Any] = {
        "threshold": 50,
        "fit": [
            {"name": "in DACH", "when": [{"field": "country", "in": ["DE", "AT", "CH"]}], "points": 10},
            {"name": "software", "when": [{"field": "industry", "equals": "Software"}], "points": 10},
            {"name": "exact size 250", "when": [{"field": "company_size", "equals": 250}], "points": 1},
            {"name": "manager", "when": [{"field": "job_title", "matches": r"\b(leiter|manager)\b"}], "points": 15},
            {"name": "mid-size", "when": [{"field": "company_size", "between": [50, 500]}], "points": 20},
            {"name": "has phone", "when": [{"field": "phone", "exists": True}], "points": 5},
            {"name": "no company", "when": [{"field": "company", "exists": False}], "points": -30},
            {
                "name": "big german manufacturer",
                "when": [
                    {"field": "country", "equals": "DE"},
                    {"field": "industry", "equals": "manufacturing"},
                    {"field": "company_size", "between": [1000, 100000]},
                ],
                "points": 7,
            },
            {"name": "partner referral", "when": [{"field": "referral", "equals": "partner"}], "points": 3},
        ],
        "engagement": [
            {
                "name": "pricing",
                "activity": ["page_viewed"],
                "url_contains": ["/pricing", "/preise"],
                "points": 15,
                "max_points": 30,
            },
            {"name": "any page", "activity": ["page_viewed"], "points": 1},
            {"name": "emails", "activity": ["email_opened", "email_clicked"], "points": 4, "max_points": 10},
        ],
        "disqualify": [
            {"name": "competitor", "when": [{"field": "email_domain", "in": ["rivalrelay.com"]}]},
            {"name": "test address", "when": [{"field": "email", "matches": "^test@"}]},
            {"name": "sanctioned country", "when": [{"field": "country", "equals": "KP"}]},
        ],
    }
    data.update(overrides)
    return LeadDefinition.model_validate(data)


def contact(**fields: Any) -> Contact:
    fields.setdefault("email", "juergen.gross@hanse-maschinen.de")
    return Contact(**fields)


def fields_of(c: Contact | None = None, custom: dict[str, str] | None = None) -> dict[str, Any]:
    return profile_fields(c, custom or {})


def evaluation(score: int = 0, disqualified_by: str | None = None) -> Evaluation:
    return Evaluation(fit=score, engagement=0, reasons=[], disqualified_by=disqualified_by)


def fit_names(ev: Evaluation) -> set[str]:
    return {r.rule for r in ev.reasons if r.category == "fit"}


# ------------------------------------------------------------ profile fields


def test_profile_fields_include_contact_email_domain_and_custom() -> None:
    f = fields_of(contact(email="Jan@Voorbeeld.NL", company="Voorbeeld B.V."), {"referral": "partner"})
    assert f["email_domain"] == "voorbeeld.nl"
    assert f["company"] == "Voorbeeld B.V."
    assert f["referral"] == "partner"
    assert f["phone"] is None
    assert fields_of(None, {"x": "y"}) == {"x": "y"}


def test_contact_fields_win_over_custom_attributes_of_the_same_name() -> None:
    f = fields_of(contact(country="DE"), {"country": "SE"})
    assert f["country"] == "DE"


# ------------------------------------------------------------ fit: every operator


def test_fit_of_a_lead_with_nothing_known_only_gets_the_negative_rule() -> None:
    ev = evaluate(definition(), fields_of(contact()), {}, handraiser=False)
    assert fit_names(ev) == {"no company"}
    assert ev.fit == -30
    assert ev.score == -30
    assert ev.disqualified_by is None


@pytest.mark.parametrize(
    ("profile", "rule", "matches"),
    [
        ({"country": "AT"}, "in DACH", True),
        ({"country": "SE"}, "in DACH", False),
        ({"industry": "SOFTWARE"}, "software", True),  # equals is case-insensitive
        ({"industry": "software services"}, "software", False),  # equals is whole value
        ({"company_size": 250}, "exact size 250", True),  # equals on a number
        ({"company_size": 251}, "exact size 250", False),
        ({"job_title": "Vertriebs Leiter"}, "manager", True),  # matches is case-insensitive
        ({"job_title": "Marketing Manager"}, "manager", True),
        ({"job_title": "Vertriebsleiter"}, "manager", False),  # \b: no match inside a word
        ({"company_size": 50}, "mid-size", True),  # between is inclusive
        ({"company_size": 500}, "mid-size", True),
        ({"company_size": 49}, "mid-size", False),
        ({"company_size": 501}, "mid-size", False),
        ({"phone": "+4930123456"}, "has phone", True),
        ({}, "has phone", False),
        ({"company": "Hanse Maschinenbau GmbH"}, "no company", False),
    ],
)
def test_each_condition_operator(profile: dict[str, Any], rule: str, matches: bool) -> None:
    ev = evaluate(definition(), fields_of(contact(**profile)), {}, handraiser=False)
    assert (rule in fit_names(ev)) is matches


def test_between_on_a_custom_string_value_and_on_text() -> None:
    defn = definition(fit=[{"name": "budget", "when": [{"field": "budget", "between": [10000, 99999]}], "points": 9}])
    assert evaluate(defn, fields_of(contact(), {"budget": "50000"}), {}, False).fit == 9
    assert evaluate(defn, fields_of(contact(), {"budget": "lots"}), {}, False).fit == 0
    assert evaluate(defn, fields_of(contact(), {}), {}, False).fit == 0


def test_exists_false_treats_empty_string_as_missing() -> None:
    defn = definition(fit=[{"name": "no ref", "when": [{"field": "ref", "exists": False}], "points": 2}])
    assert evaluate(defn, fields_of(contact(), {"ref": ""}), {}, False).fit == 2
    assert evaluate(defn, fields_of(contact(), {"ref": "x"}), {}, False).fit == 0


def test_all_conditions_of_a_rule_must_hold() -> None:
    big = {"country": "DE", "industry": "Manufacturing", "company_size": 5000}
    assert "big german manufacturer" in fit_names(evaluate(definition(), fields_of(contact(**big)), {}, False))
    for spoil in ({"country": "AT"}, {"industry": "software"}, {"company_size": 999}):
        ev = evaluate(definition(), fields_of(contact(**(big | spoil))), {}, False)
        assert "big german manufacturer" not in fit_names(ev), spoil


def test_custom_attributes_can_be_scored() -> None:
    ev = evaluate(definition(), fields_of(contact(company="X"), {"referral": "Partner"}), {}, False)
    assert fit_names(ev) == {"partner referral"}
    assert ev.fit == 3


def test_fit_points_add_up_and_reasons_carry_the_points() -> None:
    c = contact(
        first_name="Jürgen",
        last_name="Groß",
        company="Hanse Maschinenbau GmbH",
        job_title="Leiter Einkauf",
        country="DE",
        company_size=250,
        industry="software",
        phone="+49301234567",
    )
    ev = evaluate(definition(), fields_of(c), {}, handraiser=False)
    assert ev.fit == 10 + 10 + 1 + 15 + 20 + 5
    assert ev.engagement == 0
    assert {(r.rule, r.points) for r in ev.reasons} == {
        ("in DACH", 10),
        ("software", 10),
        ("exact size 250", 1),
        ("manager", 15),
        ("mid-size", 20),
        ("has phone", 5),
    }


def test_negative_points_lower_the_score() -> None:
    with_company = evaluate(definition(), fields_of(contact(company="Acme", country="DE")), {}, False)
    without = evaluate(definition(), fields_of(contact(country="DE")), {}, False)
    assert with_company.fit - without.fit == 30
    assert [r.points for r in without.reasons if r.rule == "no company"] == [-30]


# ------------------------------------------------------------ engagement


def test_rule_matches_activity_type_and_url() -> None:
    pricing = definition().engagement[0]
    assert rule_matches(pricing, PV, "https://leadrelay.example/pricing")
    assert rule_matches(pricing, PV, "https://leadrelay.example/DE/PREISE?plan=pro")  # case-insensitive
    assert not rule_matches(pricing, PV, "https://leadrelay.example/blog")
    assert not rule_matches(pricing, PV, None)
    assert not rule_matches(pricing, ActivityType.EMAIL_CLICKED, "https://leadrelay.example/pricing")
    any_page = definition().engagement[1]
    assert rule_matches(any_page, PV, None)


def test_count_activity_counts_every_matching_rule_and_leaves_the_input_alone() -> None:
    defn = definition()
    start: dict[str, int] = {}
    counts = count_activity(defn, start, PV, "https://leadrelay.example/pricing")
    assert start == {}
    assert counts == {"pricing": 1, "any page": 1}
    counts = count_activity(defn, counts, PV, "https://leadrelay.example/blog/kafka")
    counts = count_activity(defn, counts, ActivityType.EMAIL_OPENED, None)
    counts = count_activity(defn, counts, ActivityType.DEMO_REQUESTED, None)  # no rule: no count
    assert counts == {"pricing": 1, "any page": 2, "emails": 1}


def test_engagement_points_are_capped_per_rule() -> None:
    defn = definition()
    counts: dict[str, int] = {}
    for _ in range(5):
        counts = count_activity(defn, counts, PV, "https://leadrelay.example/pricing")
    for _ in range(2):
        counts = count_activity(defn, counts, ActivityType.EMAIL_CLICKED, "https://leadrelay.example/mail")
    ev = evaluate(defn, fields_of(contact(company="X")), counts, handraiser=False)
    # pricing 5 x 15 = 75 capped at 30; any page 5 x 1 (no cap); emails 2 x 4 = 8 (under the cap of 10)
    assert ev.engagement == 30 + 5 + 8
    by_rule = {r.rule: r.points for r in ev.reasons if r.category == "engagement"}
    assert by_rule == {"pricing (x5)": 30, "any page (x5)": 5, "emails (x2)": 8}


def test_counts_of_unknown_rules_are_ignored() -> None:
    ev = evaluate(definition(), fields_of(contact(company="X")), {"a rule that was removed": 7}, False)
    assert ev.engagement == 0
    assert ev.reasons == []


def test_handraiser_adds_a_reason_without_points() -> None:
    ev = evaluate(definition(), fields_of(contact(company="X")), {}, handraiser=True)
    assert [(r.category, r.points) for r in ev.reasons] == [("handraiser", 0)]
    assert ev.score == 0


# ------------------------------------------------------------ disqualifiers


def test_disqualifier_by_email_domain() -> None:
    ev = evaluate(definition(), fields_of(contact(email="spy@RivalRelay.com", company="Rival")), {}, False)
    assert ev.disqualified_by == "competitor"
    assert [r.rule for r in ev.reasons if r.category == "disqualifier"] == ["competitor"]


def test_first_matching_disqualifier_wins() -> None:
    c = contact(email="test@rivalrelay.com", country="KP")  # matches all three
    ev = evaluate(definition(), fields_of(c), {}, False)
    assert ev.disqualified_by == "competitor"
    assert [r.rule for r in ev.reasons if r.category == "disqualifier"] == ["competitor"]
    reordered = definition(disqualify=list(reversed(definition().disqualify)))
    assert evaluate(reordered, fields_of(c), {}, False).disqualified_by == "sanctioned country"


def test_no_disqualifier_matches_a_normal_lead() -> None:
    ev = evaluate(definition(), fields_of(contact(email="tester@hanse-maschinen.de", country="DE")), {}, False)
    assert ev.disqualified_by is None


# ------------------------------------------------------------ decide


NURTURE = [LeadStatus.LEAD, LeadStatus.RECYCLED, LeadStatus.DISQUALIFIED]
WITH_SALES = [LeadStatus.MQL, LeadStatus.HANDRAISER, LeadStatus.ACCEPTED]


@pytest.mark.parametrize("score", [60, 61, 500])
def test_mql_at_or_over_the_threshold(score: int) -> None:
    assert decide(LeadStatus.LEAD, evaluation(score), 60, False, True) == (LeadStatus.MQL, Qualification.MQL)


def test_below_threshold_stays_a_lead() -> None:
    assert decide(LeadStatus.LEAD, evaluation(59), 60, False, True) == (LeadStatus.LEAD, None)


def test_handraiser_beats_the_threshold() -> None:
    expected = (LeadStatus.HANDRAISER, Qualification.HANDRAISER)
    assert decide(LeadStatus.LEAD, evaluation(0), 60, True, True) == expected
    assert decide(LeadStatus.LEAD, evaluation(100), 60, True, True) == expected


def test_disqualifier_beats_handraiser_and_threshold() -> None:
    ev = evaluation(100, disqualified_by="competitor")
    assert decide(LeadStatus.LEAD, ev, 60, True, True) == (LeadStatus.DISQUALIFIED, None)
    assert decide(LeadStatus.RECYCLED, ev, 60, False, True) == (LeadStatus.DISQUALIFIED, None)


def test_disqualified_lead_can_qualify_once_the_disqualifier_no_longer_applies() -> None:
    assert decide(LeadStatus.DISQUALIFIED, evaluation(80), 60, False, True) == (LeadStatus.MQL, Qualification.MQL)
    assert decide(LeadStatus.DISQUALIFIED, evaluation(10), 60, False, True) == (LeadStatus.LEAD, None)


@pytest.mark.parametrize("status", WITH_SALES)
@pytest.mark.parametrize(
    ("score", "handraiser", "dq"), [(100, False, None), (0, True, None), (100, True, "competitor")]
)
def test_a_lead_with_sales_keeps_its_status(status: LeadStatus, score: int, handraiser: bool, dq: str | None) -> None:
    assert decide(status, evaluation(score, dq), 60, handraiser, True) == (status, None)


@pytest.mark.parametrize(("score", "handraiser"), [(0, False), (100, False), (100, True)])
def test_junk_stays_junk(score: int, handraiser: bool) -> None:
    assert decide(LeadStatus.JUNK, evaluation(score), 60, handraiser, True) == (LeadStatus.JUNK, None)


def test_recycled_stays_recycled_below_threshold_and_qualifies_again_above() -> None:
    assert decide(LeadStatus.RECYCLED, evaluation(59), 60, False, True) == (LeadStatus.RECYCLED, None)
    assert decide(LeadStatus.RECYCLED, evaluation(60), 60, False, True) == (LeadStatus.MQL, Qualification.MQL)
    assert decide(LeadStatus.RECYCLED, evaluation(0), 60, True, True) == (
        LeadStatus.HANDRAISER,
        Qualification.HANDRAISER,
    )


@pytest.mark.parametrize("status", [LeadStatus.LEAD, LeadStatus.RECYCLED])
@pytest.mark.parametrize(("score", "handraiser"), [(100, False), (0, True), (100, True)])
def test_unreachable_lead_never_qualifies(status: LeadStatus, score: int, handraiser: bool) -> None:
    assert decide(status, evaluation(score), 60, handraiser, reachable=False) == (status, None)


# ------------------------------------------------------------ the example lead definition


@pytest.fixture(scope="module")
def example() -> LeadDefinition:
    return load_rules(EXAMPLE).lead_definition


def engage(defn: LeadDefinition, *activities: tuple[ActivityType, str | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for activity, url in activities:
        counts = count_activity(defn, counts, activity, url)
    return counts


def test_example_dutch_manager_becomes_an_mql_after_pricing_and_case_studies(example: LeadDefinition) -> None:
    jan = contact(
        email="jan.devries@voorbeeld.nl",
        first_name="Jan",
        last_name="de Vries",
        company="Voorbeeld Software B.V.",
        job_title="Marketing Manager",
        country="NL",
        company_size=120,
        industry="Software",
    )
    ev = evaluate(example, fields_of(jan), {}, handraiser=False)
    assert ev.fit == 10 + 20 + 10  # influencer title, segment size, target industry (no phone)
    assert decide(LeadStatus.LEAD, ev, example.threshold, False, True) == (LeadStatus.LEAD, None)

    counts = engage(
        example,
        (PV, "https://leadrelay.example/pricing"),
        (PV, "https://leadrelay.example/pricing?plan=team"),
        (PV, "https://leadrelay.example/pricing"),
        (PV, "https://leadrelay.example/customers/nordvik"),
        (ActivityType.EMAIL_OPENED, None),
    )
    ev = evaluate(example, fields_of(jan), counts, handraiser=False)
    # pricing 3 x 15 capped at 30; case studies 1 x 5; any page 4 x 1; opened email 2
    assert ev.engagement == 30 + 5 + 4 + 2
    assert ev.score == 81
    assert decide(LeadStatus.LEAD, ev, example.threshold, False, True) == (LeadStatus.MQL, Qualification.MQL)


def test_example_swedish_ceo_fit_alone_reaches_the_threshold(example: LeadDefinition) -> None:
    asa = contact(
        email="asa.oberg@nordvik.se",
        company="Nordvik Logistics AB",
        job_title="VD",
        country="SE",
        company_size=250,
        industry="logistics",
        phone="+46701234567",
    )
    ev = evaluate(example, fields_of(asa), {}, handraiser=False)
    assert ev.fit == 25 + 20 + 10 + 5
    assert decide(LeadStatus.LEAD, ev, example.threshold, False, True)[1] is Qualification.MQL


def test_example_competitor_asking_for_a_demo_is_disqualified(example: LeadDefinition) -> None:
    spy = contact(email="cto@rivalrelay.com", job_title="CTO", company_size=300, industry="saas")
    ev = evaluate(example, fields_of(spy), {}, handraiser=True)
    assert ev.disqualified_by == "competitor"
    assert decide(LeadStatus.LEAD, ev, example.threshold, True, True) == (LeadStatus.DISQUALIFIED, None)


@pytest.mark.parametrize(
    "email", ["test@hanse-maschinen.de", "student@student.uu.se", "jane@example.com", "li@tsinghua.edu"]
)
def test_example_student_and_test_addresses_are_disqualified(example: LeadDefinition, email: str) -> None:
    ev = evaluate(example, fields_of(contact(email=email)), {}, handraiser=False)
    assert ev.disqualified_by == "student or test address"


def test_example_demo_request_is_a_handraiser_activity(example: LeadDefinition) -> None:
    assert ActivityType.DEMO_REQUESTED in example.handraiser_activities
    assert example.threshold == 60


@pytest.mark.parametrize("title", ["Geschäftsführer", "CTO", "Head of Sales", "Directeur commercial", "总监"])
def test_example_decision_maker_titles(example: LeadDefinition, title: str) -> None:
    ev = evaluate(example, fields_of(contact(job_title=title)), {}, handraiser=False)
    assert "decision-maker title" in fit_names(ev)


@pytest.mark.parametrize("title", ["销售总监", "市场部经理"])
def test_example_chinese_decision_maker_titles_inside_a_longer_title(example: LeadDefinition, title: str) -> None:
    ev = evaluate(example, fields_of(contact(job_title=title)), {}, handraiser=False)
    assert "decision-maker title" in fit_names(ev)


# ---------------------------------------------------------------- verdicts, events, what counts


def test_what_each_verdict_does_to_the_lead() -> None:
    from leadrelay.events import Disposition
    from scoring.domain import after_disposition

    assert after_disposition(Disposition.ACCEPTED).status is LeadStatus.ACCEPTED
    assert not after_disposition(Disposition.ACCEPTED).restart_engagement
    assert after_disposition(Disposition.JUNK).status is LeadStatus.JUNK
    assert not after_disposition(Disposition.JUNK).restart_engagement
    for back in (Disposition.RECYCLE, Disposition.UNREACHABLE):
        effect = after_disposition(back)
        assert effect.status is LeadStatus.RECYCLED and effect.restart_engagement


def test_a_score_event_is_due_on_change_on_a_verdict_and_for_a_new_lead() -> None:
    from scoring.domain import score_event_due

    same = (40, 30, "lead")
    assert not score_event_due(same, same, forced=False, new_lead=False)
    assert score_event_due(same, (41, 30, "lead"), forced=False, new_lead=False)
    assert score_event_due(same, (40, 30, "mql"), forced=False, new_lead=False)
    assert score_event_due(same, same, forced=True, new_lead=False)
    assert score_event_due(same, same, forced=False, new_lead=True)


def test_qualified_means_handed_to_sales_or_accepted() -> None:
    from scoring.domain import is_qualified

    assert {s for s in LeadStatus if is_qualified(s)} == {LeadStatus.MQL, LeadStatus.HANDRAISER, LeadStatus.ACCEPTED}


def test_activity_counts_only_since_the_lead_came_back_to_marketing() -> None:
    from datetime import UTC, datetime

    from scoring.domain import counts_since

    t = datetime(2026, 5, 1, tzinfo=UTC)
    assert counts_since(t, None)
    assert counts_since(t, t)
    assert not counts_since(t, datetime(2026, 5, 2, tzinfo=UTC))


def test_a_repeated_submission_within_the_window_is_recorded_once() -> None:
    from datetime import UTC, datetime, timedelta

    from leadrelay.events import ActivitySummary
    from scoring.domain import add_consent, repeated_submission

    t0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    window = timedelta(minutes=10)
    recent = [
        ActivitySummary(type=ActivityType.FORM_SUBMITTED, occurred_at=t0, detail="webinar"),
        ActivitySummary(type=ActivityType.PAGE_VIEWED, occurred_at=t0, detail="demo-request"),
    ]
    assert repeated_submission(recent, "webinar", t0 + timedelta(minutes=9), window)
    assert repeated_submission(recent, "webinar", t0 + window, window)
    assert not repeated_submission(recent, "webinar", t0 + window + timedelta(seconds=1), window)
    assert not repeated_submission(recent, "demo-request", t0 + timedelta(minutes=1), window)  # another form
    assert not repeated_submission(recent, "webinar", t0 - timedelta(minutes=1), window)  # an older one arriving late
    assert repeated_submission(recent, "webinar", t0, timedelta(0))  # a zero window: only the same instant
    kept = add_consent(None, {"n": 0})
    for n in range(1, 30):
        kept = add_consent(kept, {"n": n})
    assert [k["n"] for k in kept] == list(range(10, 30))


def test_a_visitor_joins_the_first_lead_that_claims_it() -> None:
    from scoring.domain import Join, join

    assert join(None, "lead-a") is Join.JOIN
    assert join("lead-a", "lead-a") is Join.ALREADY
    assert join("lead-a", "lead-b") is Join.OTHER
