"""routing.domain: who gets a qualified lead (pure: loads and cursors are passed in)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from leadrelay.events import Contact
from leadrelay.rules import Rules, load_rules, parse_rules
from routing.domain import choose, company_key, match_account

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


def rep(rep_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": rep_id, "name": rep_id.replace(".", " ").title(), "email": f"{rep_id}@leadrelay.example", **extra}


def rules(territories: list[dict[str, Any]], accounts: list[dict[str, Any]] | None = None, **extra: Any) -> Rules:
    return parse_rules(
        {
            "forms": [{"id": "demo-request", "name": "Book a demo", "handraiser": True}],
            "lead_definition": {"threshold": 60},
            "territories": territories,
            "accounts": accounts or [],
            "sla": {
                "mql": {"first_touch": "48h", "disposition": "5d"},
                "handraiser": {"first_touch": "1h", "disposition": "2d"},
            },
            **extra,
        }
    )


def two_territories(
    dach_reps: list[dict[str, Any]] | None = None,
    row_reps: list[dict[str, Any]] | None = None,
    accounts: list[dict[str, Any]] | None = None,
) -> Rules:
    return rules(
        [
            {
                "id": "dach",
                "name": "DACH",
                "countries": ["DE", "AT", "CH"],
                "reps": dach_reps or [rep("jonas.becker"), rep("lena.huber")],
            },
            {
                "id": "rest-of-world",
                "name": "Rest of world",
                "fallback": True,
                "reps": row_reps or [rep("olivia.smith"), rep("james.brown")],
            },
        ],
        accounts,
    )


def example_with(mutate: Any) -> Rules:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    mutate(data)
    return parse_rules(data)


def lead(**fields: Any) -> Contact:
    fields.setdefault("email", "juergen.gross@beispiel.de")
    return Contact(**fields)


@pytest.fixture(scope="module")
def example() -> Rules:
    return load_rules(EXAMPLE)


# ------------------------------------------------------------ territories of the example


@pytest.mark.parametrize(
    ("country", "territory"),
    [
        ("SE", "nordics"),
        ("NO", "nordics"),
        ("DK", "nordics"),
        ("FI", "nordics"),
        ("IS", "nordics"),
        ("DE", "dach"),
        ("AT", "dach"),
        ("CH", "dach"),
        ("NL", "benelux"),
        ("BE", "benelux"),
        ("LU", "benelux"),
        ("CN", "greater-china"),
        ("HK", "greater-china"),
        ("TW", "greater-china"),
    ],
)
def test_example_territory_by_country(example: Rules, country: str, territory: str) -> None:
    choice = choose(example, lead(country=country), {}, {})
    assert choice.territory.id == territory
    assert choice.matched_by == "territory"
    assert choice.rep.id == example.territory_for_country(country).reps[0].id
    assert choice.rep in choice.territory.reps
    assert choice.account is None


@pytest.mark.parametrize("country", ["US", "GB", "BR", "JP", "FR", None])
def test_example_anything_else_goes_to_rest_of_world(example: Rules, country: str | None) -> None:
    choice = choose(example, lead(country=country), {}, {})
    assert choice.territory.id == "rest-of-world"
    assert choice.matched_by == "fallback"
    assert choice.rep.id in {"olivia.smith", "james.brown"}


# ------------------------------------------------------------ round robin


def test_round_robin_alternates_via_the_returned_cursor() -> None:
    r = two_territories()
    cursors: dict[str, int] = {}
    picked = []
    for _ in range(5):
        choice = choose(r, lead(country="DE"), {}, cursors)
        assert choice.cursor is not None
        cursors[choice.territory.id] = choice.cursor
        picked.append(choice.rep.id)
    assert picked == ["jonas.becker", "lena.huber", "jonas.becker", "lena.huber", "jonas.becker"]


def test_cursor_is_per_territory() -> None:
    r = two_territories()
    cursors = {"dach": 1}
    assert choose(r, lead(country="DE"), {}, cursors).rep.id == "lena.huber"
    assert choose(r, lead(country="US"), {}, cursors).rep.id == "olivia.smith"


def test_cursor_past_the_end_wraps_around() -> None:
    r = two_territories()
    assert choose(r, lead(country="AT"), {}, {"dach": 7}).rep.id == "lena.huber"


def test_unavailable_rep_is_skipped() -> None:
    r = two_territories([rep("jonas.becker", available=False), rep("lena.huber"), rep("max.mustermann")])
    cursors: dict[str, int] = {}
    picked = []
    for _ in range(4):
        choice = choose(r, lead(country="CH"), {}, cursors)
        cursors["dach"] = choice.cursor  # type: ignore[assignment]
        picked.append(choice.rep.id)
    assert picked == ["lena.huber", "max.mustermann", "lena.huber", "max.mustermann"]


def test_availability_set_at_run_time_overrides_the_rules() -> None:
    r = two_territories([rep("jonas.becker"), rep("lena.huber", available=False)])
    # Jonas set away, Lena (away in the rules) set available: the overrides win.
    for cursor in (0, 1):
        choice = choose(r, lead(country="DE"), {}, {"dach": cursor}, {"jonas.becker": False, "lena.huber": True})
        assert choice.rep.id == "lena.huber"
    # Everyone at home away: the fallback territory takes it; an override elsewhere counts too.
    away = {"jonas.becker": False, "olivia.smith": False}
    choice = choose(r, lead(country="AT"), {}, {}, away)
    assert (choice.matched_by, choice.rep.id) == ("fallback", "james.brown")
    # No override: the rules apply.
    assert choose(r, lead(country="DE"), {}, {"dach": 1}).rep.id == "jonas.becker"


def test_account_owner_set_away_falls_back_to_territory_routing(example: Rules) -> None:
    choice = choose(example, lead(email="lars@nordvik.se", country="SE"), {}, {}, {"astrid.lindqvist": False})
    assert (choice.matched_by, choice.rep.id) == ("territory", "mikko.virtanen")


def test_rep_at_capacity_is_skipped_and_under_capacity_is_not() -> None:
    r = two_territories([rep("jonas.becker", capacity=3), rep("lena.huber", capacity=3)])
    full = choose(r, lead(country="DE"), {"jonas.becker": 3}, {"dach": 0})
    assert full.rep.id == "lena.huber"
    assert full.matched_by == "territory"
    assert full.cursor == 0  # next time starts after lena: back at jonas
    under = choose(r, lead(country="DE"), {"jonas.becker": 2}, {"dach": 0})
    assert under.rep.id == "jonas.becker"


def test_default_capacity_is_50() -> None:
    r = two_territories()
    assert choose(r, lead(country="DE"), {"jonas.becker": 49}, {}).rep.id == "jonas.becker"
    assert choose(r, lead(country="DE"), {"jonas.becker": 50}, {}).rep.id == "lena.huber"


def test_whole_territory_away_goes_to_the_fallback_territory() -> None:
    r = two_territories([rep("jonas.becker", available=False), rep("lena.huber", available=False)])
    choice = choose(r, lead(country="DE"), {}, {"rest-of-world": 1})
    assert choice.territory.id == "rest-of-world"
    assert choice.matched_by == "fallback"
    assert choice.rep.id == "james.brown"
    assert choice.cursor == 0


def test_whole_territory_at_capacity_goes_to_the_fallback_territory() -> None:
    r = two_territories([rep("jonas.becker", capacity=1), rep("lena.huber", capacity=1)])
    choice = choose(r, lead(country="DE"), {"jonas.becker": 1, "lena.huber": 5}, {})
    assert (choice.territory.id, choice.matched_by, choice.rep.id) == ("rest-of-world", "fallback", "olivia.smith")


def test_everyone_at_capacity_overflows_to_the_least_loaded_rep_at_home() -> None:
    r = two_territories(
        [rep("jonas.becker", capacity=10), rep("lena.huber", capacity=10)],
        [rep("olivia.smith", capacity=2), rep("james.brown", capacity=2)],
    )
    loads = {"jonas.becker": 14, "lena.huber": 11, "olivia.smith": 2, "james.brown": 2}
    choice = choose(r, lead(country="DE"), loads, {})
    assert choice.matched_by == "overflow"
    assert choice.rep.id == "lena.huber"
    assert choice.territory.id == "dach"
    assert choice.cursor is None  # round robin was not used


def test_overflow_skips_an_unavailable_rep_even_if_least_loaded() -> None:
    r = two_territories(
        [rep("jonas.becker", capacity=1, available=False), rep("lena.huber", capacity=1)],
        [rep("olivia.smith", capacity=1)],
    )
    choice = choose(r, lead(country="DE"), {"jonas.becker": 0, "lena.huber": 3, "olivia.smith": 1}, {})
    assert choice.matched_by == "overflow"
    assert choice.rep.id == "lena.huber"


def test_overflow_never_picks_an_unavailable_rep_when_the_home_territory_is_away() -> None:
    r = two_territories(
        [rep("jonas.becker", available=False), rep("lena.huber", available=False)],
        [rep("olivia.smith", capacity=2), rep("james.brown", capacity=2)],
    )
    choice = choose(r, lead(country="DE"), {"olivia.smith": 2, "james.brown": 3}, {})
    assert choice.matched_by == "overflow"
    assert choice.rep.available
    assert choice.rep.id == "olivia.smith"


# ------------------------------------------------------------ named accounts


def test_account_by_email_domain(example: Rules) -> None:
    choice = choose(example, lead(email="lars.nilsson@nordvik.se", country="US"), {}, {})
    assert choice.matched_by == "account"
    assert choice.account is not None and choice.account.id == "nordvik"
    assert choice.rep.id == "astrid.lindqvist"
    assert choice.territory.id == "nordics"
    assert choice.cursor is None


def test_account_by_email_domain_ignores_case(example: Rules) -> None:
    choice = choose(example, lead(email="Juergen.Gross@Hanse-Maschinen.DE", country="CN"), {}, {})
    assert (choice.matched_by, choice.rep.id) == ("account", "jonas.becker")


def test_account_by_website(example: Rules) -> None:
    choice = choose(example, lead(email="jan.devries@gmail.com", website="nordvik.se", country="NL"), {}, {})
    assert (choice.matched_by, choice.rep.id) == ("account", "astrid.lindqvist")


@pytest.mark.parametrize(
    ("email", "website"),
    [("wang.fang@cn.nordvik.se", None), ("wang.fang@163.com", "shop.hanse-maschinen.de")],
)
def test_account_by_subdomain(example: Rules, email: str, website: str | None) -> None:
    choice = choose(example, lead(email=email, website=website, country="CN"), {}, {})
    assert choice.matched_by == "account"
    assert choice.territory.id in {"nordics", "dach"}


@pytest.mark.parametrize("email", ["a@notnordvik.se", "a@nordvik.se.example.com", "a@nordvik.com"])
def test_lookalike_domains_are_not_the_account(example: Rules, email: str) -> None:
    assert match_account(example, lead(email=email)) is None


@pytest.mark.parametrize(
    "company", ["Nordvik Logistics AB", "NORDVIK LOGISTICS", "Nordvik Logistics Oy", "Nordvik", "Nordvik AB"]
)
def test_account_by_fuzzy_company_name(example: Rules, company: str) -> None:
    choice = choose(example, lead(email="asa.oberg@gmail.com", company=company, country="DE"), {}, {})
    assert choice.matched_by == "account"
    assert choice.account is not None and choice.account.id == "nordvik"
    assert choice.rep.id == "astrid.lindqvist"


def test_account_by_company_name_with_legal_form(example: Rules) -> None:
    account = match_account(example, lead(email="j@gmx.de", company="Hanse Maschinenbau GmbH"))
    assert account is not None and account.id == "hanse-maschinen"


@pytest.mark.parametrize(
    "company", ["Nordic Paper", "Nordic Paper AB", "Hanse Logistik", "Volvo Cars AB", "AB", "GmbH"]
)
def test_unrelated_company_is_not_an_account(example: Rules, company: str) -> None:
    assert match_account(example, lead(email="someone@gmail.com", company=company)) is None
    choice = choose(example, lead(email="someone@gmail.com", company=company, country="SE"), {}, {})
    assert choice.matched_by == "territory"
    assert choice.account is None


def test_account_match_score_is_configurable() -> None:
    accounts = [{"id": "nordvik", "name": "Nordvik Logistics", "owner": "lena.huber"}]
    strict = two_territories(accounts=accounts)
    lenient = rules(
        [{"id": "row", "name": "ROW", "fallback": True, "reps": [rep("lena.huber"), rep("olivia.smith")]}],
        accounts,
        routing={"account_match_score": 50},
    )
    somewhat = lead(email="x@gmail.com", company="Nordvik Log. AB")  # token_sort_ratio ~79
    assert match_account(strict, somewhat) is None
    assert match_account(lenient, somewhat) is not None


def test_account_owner_unavailable_falls_back_to_territory_routing() -> None:
    r = example_with(lambda d: d["territories"][0]["reps"][0].update(available=False))  # astrid away
    choice = choose(r, lead(email="lars.nilsson@nordvik.se", country="DE"), {}, {})
    assert choice.matched_by == "territory"
    assert choice.territory.id == "dach"
    assert choice.rep.id == "jonas.becker"
    assert choice.account is not None and choice.account.id == "nordvik"  # still shown in the handoff


def test_account_owner_gets_the_lead_even_at_capacity(example: Rules) -> None:
    choice = choose(example, lead(email="lars@nordvik.se", country="US"), {"astrid.lindqvist": 500}, {})
    assert (choice.matched_by, choice.rep.id) == ("account", "astrid.lindqvist")


# ------------------------------------------------------------ company_key


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Volvo Cars AB", "volvo cars"),
        ("AB Volvo", "volvo"),
        ("Nordvik Logistics AB", "nordvik logistics"),
        ("Hanse Maschinenbau GmbH", "hanse maschinenbau"),
        ("Siemens AG", "siemens"),
        ("Bertelsmann SE & Co. KGaA", "bertelsmann"),
        ("Co-op Ltd", "coop"),
        ("Nokia Oyj", "nokia"),
        ("Equinor ASA", "equinor"),
        ("Acme Ltd.", "acme"),
        ("Acme Limited", "acme"),
        ("Tesco PLC", "tesco"),
        ("Stripe, Inc.", "stripe"),
        ("Widgets LLC", "widgets"),
        ("Nordic Paper Holding AB", "nordic paper"),
        ("  Nordvik   Logistics  ", "nordvik logistics"),
        ("Åkerlund & Rausing", "åkerlund rausing"),
        ("王芳科技", "王芳科技"),
    ],
)
def test_company_key_strips_legal_forms_and_punctuation(name: str, key: str) -> None:
    assert company_key(name) == key


@pytest.mark.parametrize(
    ("name", "key"),
    [("Philips B.V.", "philips"), ("Heineken N.V.", "heineken"), ("Nestlé S.A.", "nestlé"), ("Maersk A/S", "maersk")],
)
def test_company_key_strips_dotted_legal_forms(name: str, key: str) -> None:
    assert company_key(name) == key


def test_dotted_legal_form_does_not_hide_a_named_account() -> None:
    r = two_territories(accounts=[{"id": "heineken", "name": "Heineken", "owner": "lena.huber"}])
    assert match_account(r, lead(email="jan@gmail.com", company="Heineken AB")) is not None  # undotted form works
    account = match_account(r, lead(email="jan@gmail.com", company="Heineken N.V."))
    assert account is not None and account.id == "heineken"


# ---------------------------------------------------------------- what a qualification or a verdict ends


def test_only_a_verdict_other_than_accepted_releases_the_rep() -> None:
    from leadrelay.events import Disposition

    assert not Disposition.ACCEPTED.closes_assignment
    assert all(d.closes_assignment for d in (Disposition.RECYCLE, Disposition.JUNK, Disposition.UNREACHABLE))


@pytest.mark.parametrize(
    ("assignments", "cycle", "assign", "release"),
    [
        ([], 1, True, ()),  # first qualification
        ([(1, "active")], 1, False, ()),  # redelivered
        ([(2, "active")], 1, False, ()),  # a stale older cycle
        ([(1, "active")], 2, True, (1,)),  # requalified before its recycle arrived: the old cycle ends
        ([(1, "released")], 2, True, ()),  # the usual path: recycled, then requalified
        ([(1, "released"), (2, "released")], 2, False, ()),  # cycle 2 was assigned once already
    ],
)
def test_plan_of_a_qualification(
    assignments: list[tuple[int, str]], cycle: int, assign: bool, release: tuple[int, ...]
) -> None:
    from routing.domain import plan_qualification

    plan = plan_qualification(assignments, cycle)
    assert (plan.assign, plan.release) == (assign, release)
