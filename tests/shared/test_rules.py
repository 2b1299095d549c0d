"""leadrelay.rules: the rules file loads, and every mistake in it gets a clear message naming the key."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from leadrelay.events import ActivityType, Qualification
from leadrelay.rules import (
    Condition,
    Role,
    Rules,
    RulesError,
    SlaPolicy,
    SourceRole,
    country_code,
    load_rules,
    parse_rules,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


def example_data() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))


def rejected(data: Any, source: str = "rules.yaml") -> str:
    with pytest.raises(RulesError) as info:
        parse_rules(data, source)
    message = str(info.value)
    assert message.startswith(f"invalid rules in {source}:")
    return message


def territory(tid: str, countries: list[Any], reps: list[str], fallback: bool = False) -> dict[str, Any]:
    return {
        "id": tid,
        "name": tid.title(),
        "countries": countries,
        "fallback": fallback,
        "reps": [{"id": r, "name": r.title(), "email": f"{r}@leadrelay.example"} for r in reps],
    }


# ------------------------------------------------------------ the example


def test_example_config_loads() -> None:
    rules = load_rules(EXAMPLE)
    assert isinstance(rules, Rules)
    assert [f.id for f in rules.forms] == [
        "demo-request",
        "contact-sales",
        "newsletter",
        "whitepaper",
        "webinar",
        "list-import",
    ]
    assert {f.id for f in rules.forms if f.handraiser} == {"demo-request", "contact-sales"}
    assert [t.id for t in rules.territories] == ["nordics", "dach", "benelux", "greater-china", "rest-of-world"]
    assert rules.territory_for_country("NO").id == "nordics"  # the quoted "NO" stays a country
    assert rules.fallback_territory.id == "rest-of-world"
    assert rules.lead_definition.threshold == 60
    assert rules.lead_definition.handraiser_activities == [ActivityType.DEMO_REQUESTED]
    assert rules.routing.account_match_score == 90
    assert rules.sla.policy(Qualification.HANDRAISER) == SlaPolicy(first_touch="1h", disposition="2d")
    assert rules.sla.policy(Qualification.MQL).first_touch == timedelta(hours=48)
    assert rules.sla.policy(Qualification.MQL).disposition == timedelta(days=5)


def test_example_lookups() -> None:
    rules = load_rules(EXAMPLE)
    assert rules.form("newsletter") is not None and rules.form("nope") is None
    rep = rules.rep("wang.fang")
    assert rep is not None and rep.capacity == 50 and rep.available
    assert rules.rep("nobody") is None
    assert rules.territory_of_rep("lena.huber").id == "dach"  # type: ignore[union-attr]
    assert rules.territory_of_rep("nobody") is None
    assert rules.territory_for_country(None).id == "rest-of-world"
    assert rules.territory_for_country("US").id == "rest-of-world"


# ------------------------------------------------------------ cross-checks


def test_duplicate_form_id() -> None:
    data = example_data()
    data["forms"].append({"id": "newsletter", "name": "Another newsletter"})
    assert "duplicate form id(s): newsletter" in rejected(data)


def test_duplicate_rep_id_across_territories() -> None:
    data = example_data()
    data["territories"][2]["reps"].append({"id": "jonas.becker", "name": "Jonas B", "email": "jb@leadrelay.example"})
    message = rejected(data)
    assert "duplicate rep id(s): jonas.becker" in message
    assert "duplicate territory" not in message


def test_duplicate_territory_id() -> None:
    data = example_data()
    data["territories"].insert(0, territory("dach", ["PL"], ["jan.kowalski"]))
    message = rejected(data)
    assert "duplicate territory id(s): dach" in message


def test_duplicate_account_id() -> None:
    data = example_data()
    data["accounts"].append({"id": "nordvik", "name": "Nordvik Two", "owner": "astrid.lindqvist"})
    assert "duplicate account id(s): nordvik" in rejected(data)


@pytest.mark.parametrize("spelling", ["SE", "SWE", "Sweden", "se"])
def test_country_in_two_territories(spelling: str) -> None:
    data = example_data()
    data["territories"][1]["countries"].append(spelling)
    assert "country SE is in both territories 'nordics' and 'dach'" in rejected(data)


def test_no_fallback_territory() -> None:
    data = example_data()
    data["territories"][-1]["fallback"] = False
    assert "exactly one territory must have fallback: true (found 0)" in rejected(data)


def test_two_fallback_territories() -> None:
    data = example_data()
    data["territories"][0]["fallback"] = True
    assert "exactly one territory must have fallback: true (found 2)" in rejected(data)


def test_account_owner_not_a_rep() -> None:
    data = example_data()
    data["accounts"][1]["owner"] = "hans.mueller"
    assert "account 'hanse-maschinen': owner 'hans.mueller' is not a rep of any territory" in rejected(data)


def test_several_problems_are_reported_together() -> None:
    data = example_data()
    data["forms"].append({"id": "webinar", "name": "Dup"})
    data["territories"][0]["fallback"] = True
    data["accounts"][0]["owner"] = "nobody"
    message = rejected(data)
    for part in ("duplicate form id(s): webinar", "(found 2)", "owner 'nobody'"):
        assert part in message


# ------------------------------------------------------------ countries


def test_unknown_country_names_its_key() -> None:
    data = example_data()
    data["territories"][2]["countries"].append("Atlantis")
    message = rejected(data)
    assert "territories.2.countries.3" in message
    assert "unknown country 'Atlantis'" in message


def test_countries_are_normalised_to_alpha2() -> None:
    data = example_data()
    data["territories"][1]["countries"] = ["DEU", "austria", "ch"]
    rules = parse_rules(data)
    assert rules.territories[1].countries == ["DE", "AT", "CH"]


def test_bare_no_read_by_yaml_as_false_tells_to_quote_it(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace('countries: [SE, "NO", DK, FI, IS]', "countries: [SE, NO, DK]")
    assert "[SE, NO, DK]" in text
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_rules(path)
    message = str(info.value)
    assert str(path) in message
    assert "territories.0.countries.1" in message
    assert 'quote the country code, e.g. "NO"' in message


def test_country_code_helper() -> None:
    assert country_code(" nld ") == "NL"
    assert country_code("China") == "CN"
    with pytest.raises(ValueError, match="unknown country 'Mordor'"):
        country_code("Mordor")


# ------------------------------------------------------------ conditions


def fit_rule(condition: dict[str, Any]) -> dict[str, Any]:
    data = example_data()
    data["lead_definition"]["fit"] = [{"name": "r", "when": [condition], "points": 1}]
    return data


def test_bad_regex_names_the_condition() -> None:
    message = rejected(fit_rule({"field": "job_title", "matches": "(ceo|cto"}))
    assert "lead_definition.fit.0.when.0" in message
    assert "bad regular expression '(ceo|cto'" in message


def test_condition_with_no_operator() -> None:
    message = rejected(fit_rule({"field": "job_title"}))
    assert "lead_definition.fit.0.when.0" in message
    assert "condition on 'job_title' needs exactly one of equals, in, matches, between, exists" in message


@pytest.mark.parametrize(
    "extra", [{"equals": "CEO", "matches": "ceo"}, {"in": ["a"], "exists": True}, {"between": [1, 2], "equals": 3}]
)
def test_condition_with_two_operators(extra: dict[str, Any]) -> None:
    message = rejected(fit_rule({"field": "company_size", **extra}))
    assert "lead_definition.fit.0.when.0" in message
    assert "needs exactly one of" in message


def test_condition_in_a_disqualifier_names_its_key() -> None:
    data = example_data()
    data["lead_definition"]["disqualify"][1]["when"][0]["matches"] = "[unclosed"
    assert "lead_definition.disqualify.1.when.0" in rejected(data)


def test_unknown_key_is_named() -> None:
    data = example_data()
    data["territories"][0]["reps"][0]["phone"] = "+46..."
    message = rejected(data)
    assert "territories.0.reps.0.phone" in message
    assert "Extra inputs are not permitted" in message


def test_unknown_activity_type_is_named() -> None:
    data = example_data()
    data["lead_definition"]["engagement"][0]["activity"] = ["page_visited"]
    assert "lead_definition.engagement.0.activity.0" in rejected(data)


def test_condition_with_in_alias_and_exists_false() -> None:
    c = Condition.model_validate({"field": "country", "in": ["SE", "NO"]})
    assert c.test("no") and not c.test("DK") and not c.test(None)
    missing = Condition.model_validate({"field": "phone", "exists": False})
    assert missing.test(None) and missing.test("") and not missing.test("+46")


def test_bare_no_in_a_condition_is_rejected() -> None:
    data = fit_rule(yaml.safe_load("{field: country, equals: NO}"))
    message = rejected(data)
    assert "lead_definition.fit.0.when.0" in message


# ------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("48h", timedelta(hours=48)),
        ("30m", timedelta(minutes=30)),
        ("2s", timedelta(seconds=2)),
        ("5d", timedelta(days=5)),
        ("1w", timedelta(weeks=1)),
        ("1.5h", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
        (" 12 h ", timedelta(hours=12)),
        ("PT1H", timedelta(hours=1)),
        ("PT30M", timedelta(minutes=30)),
        ("P2D", timedelta(days=2)),
        (3600, timedelta(hours=1)),
        (90.5, timedelta(seconds=90.5)),
    ],
)
def test_durations(value: Any, expected: timedelta) -> None:
    assert SlaPolicy.model_validate({"first_touch": value, "disposition": value}).first_touch == expected


@pytest.mark.parametrize("value", ["soon", "48 hours", "h48", "5x"])
def test_bad_duration_names_its_key(value: str) -> None:
    data = example_data()
    data["sla"]["mql"]["first_touch"] = value
    assert "sla.mql.first_touch" in rejected(data)


def test_missing_sla_policy_is_named() -> None:
    data = example_data()
    del data["sla"]["handraiser"]
    message = rejected(data)
    assert "sla.handraiser" in message
    assert "Field required" in message


# ------------------------------------------------------------ loading files


def test_load_rules_on_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(RulesError) as info:
        load_rules(path)
    message = str(info.value)
    assert message.startswith(f"cannot read rules file {path}")
    assert "No such file or directory" in message


def test_load_rules_on_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("forms:\n  - {id: demo, name: [unclosed\nterritories: x\n", encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_rules(path)
    message = str(info.value)
    assert message.startswith(f"rules file {path} is not valid YAML")
    assert "line" in message


def test_load_rules_on_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert str(info.value).startswith(f"invalid rules in {path}:\n  (top level): ")


def test_load_rules_names_the_file_in_validation_errors(tmp_path: Path) -> None:
    data = example_data()
    data["lead_definition"]["threshold"] = 0
    path = tmp_path / "zero.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert str(info.value).startswith(f"invalid rules in {path}:")
    assert "lead_definition.threshold" in str(info.value)


# ------------------------------------------------------------ people and sources


def test_example_people() -> None:
    rules = load_rules(EXAMPLE)
    everyone = rules.people()
    assert [p.role.value for p in everyone[:10]] == ["rep"] * 10  # reps first, territory by territory
    assert [p.id for p in everyone[10:]] == ["karin.ek", "tom.weber", "ops.desk", "rita.admin"]
    astrid = rules.person("astrid.lindqvist")
    assert astrid is not None and (astrid.role, astrid.territories) == (Role.REP, ["nordics"])
    assert astrid.email == "astrid.lindqvist@leadrelay.example"
    karin = rules.person("karin.ek")
    assert karin is not None and (karin.role, karin.territories) == (Role.MANAGER, ["nordics", "benelux"])
    assert rules.person("ops.desk").role is Role.OPS  # type: ignore[union-attr]
    assert rules.person("rita.admin").role is Role.ADMIN  # type: ignore[union-attr]
    assert rules.person("nobody") is None
    assert [m.id for m in rules.managers_of("benelux")] == ["karin.ek"]
    assert [m.id for m in rules.managers_of("rest-of-world")] == ["tom.weber"]
    assert rules.managers_of("atlantis") == []
    assert {r.value for r in Role} <= {p.role.value for p in everyone}, "the example names every role"
    assert [(s.id, s.role) for s in rules.sources] == [
        ("website-tracking", SourceRole.TRACKING),
        ("website", SourceRole.TRACKING),
        ("crm", SourceRole.CRM),
        ("prometheus", SourceRole.MONITORING),
        ("list-import", SourceRole.TRACKING),
    ]
    assert rules.source("crm") is not None and rules.source("nope") is None


def test_rules_without_people_or_sources_still_load() -> None:
    data = example_data()
    del data["people"], data["sources"]
    rules = parse_rules(data)
    assert rules.staff == [] and rules.sources == [] and len(rules.people()) == 10


@pytest.mark.parametrize(
    ("person", "message"),
    [
        (
            {"id": "astrid.lindqvist", "name": "A", "role": "ops"},
            "people.4.id: 'astrid.lindqvist' is already a rep of territory 'nordics'",
        ),
        (
            {"id": "ops.desk", "name": "Two", "role": "ops"},
            "people.4.id: duplicate person id 'ops.desk' (also people.2)",
        ),
        ({"id": "m", "name": "M", "role": "manager"}, "people.4.territories: a manager needs at least one territory"),
        (
            {"id": "m", "name": "M", "role": "manager", "territories": ["nordics", "atlantis"]},
            "people.4.territories: unknown territory 'atlantis'",
        ),
        ({"id": "r", "name": "R", "role": "rep"}, "people.4.role: reps are listed under their territory's reps"),
        (
            {"id": "o", "name": "O", "role": "ops", "territories": ["dach"]},
            "people.4.territories: only managers have territories",
        ),
        ({"id": "o", "name": "O", "role": "boss"}, "people.4.role"),
        ({"id": "Not Valid", "name": "O", "role": "ops"}, "people.4.id"),
        ({"id": "o", "role": "ops"}, "people.4.name"),
        ({"id": "o", "name": "O", "role": "ops", "phone": "1"}, "people.4.phone"),
    ],
)
def test_people_mistakes_name_the_key(person: dict[str, Any], message: str) -> None:
    data = example_data()
    data["people"].append(person)
    assert message in rejected(data)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"id": "crm", "role": "crm", "key_env": "LEADRELAY_API_KEY_CRM2"}, "sources.5.id: duplicate source id 'crm'"),
        (
            {"id": "crm2", "role": "crm", "key_env": "LEADRELAY_API_KEY_CRM"},
            "sources.5.key_env: LEADRELAY_API_KEY_CRM is also the key of sources.2",
        ),
        ({"id": "x", "role": "god", "key_env": "X_KEY"}, "sources.5.role"),
        ({"id": "x", "role": "crm", "key_env": "lower-case"}, "sources.5.key_env"),
        ({"id": "x", "role": "crm", "key": "abc"}, "sources.5.key"),
    ],
)
def test_source_mistakes_name_the_key(source: dict[str, Any], message: str) -> None:
    data = example_data()
    data["sources"].append(source)
    assert message in rejected(data)
