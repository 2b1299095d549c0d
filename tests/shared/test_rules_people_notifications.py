"""leadrelay.rules: the people section, the notifications section and sla.warn_before, with errors that
name the key."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from leadrelay.rules import NotificationType, Role, RulesError, load_rules, parse_rules

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


def example_data() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))


def rejected(data: Any) -> str:
    with pytest.raises(RulesError) as info:
        parse_rules(data, "rules.yaml")
    return str(info.value)


# ------------------------------------------------------------ people


def test_the_example_names_people_of_every_role() -> None:
    rules = load_rules(EXAMPLE)
    people = rules.people()
    assert [p.id for p in people[:2]] == ["astrid.lindqvist", "mikko.virtanen"]  # reps first, in file order
    assert {p.role for p in people} == set(Role)
    astrid = rules.person("astrid.lindqvist")
    assert astrid is not None and astrid.role is Role.REP and astrid.territories == ["nordics"]
    assert astrid.email == "astrid.lindqvist@leadrelay.example"
    karin = rules.person("karin.ek")
    assert karin is not None and karin.role is Role.MANAGER and karin.territories == ["nordics", "benelux"]
    assert rules.person("nobody") is None
    assert [m.id for m in rules.managers_of("benelux")] == ["karin.ek"]
    assert [m.id for m in rules.managers_of("dach")] == ["tom.weber"]
    assert rules.managers_of("nowhere") == []


def test_a_person_needs_a_known_role() -> None:
    data = example_data()
    data["people"][2]["role"] = "boss"
    message = rejected(data)
    assert "people.2.role" in message


def test_names_longer_than_notifications_keep_are_refused_when_the_rules_load() -> None:
    """sla-monitor keeps a recipient's name in 200 characters: a longer one would stall it on PostgreSQL."""
    data = example_data()
    data["people"][0]["name"] = "Ö" * 201
    assert "people.0.name" in rejected(data)
    data = example_data()
    data["territories"][0]["reps"][0]["name"] = "王" * 201
    assert "territories.0.reps.0.name" in rejected(data)
    data["territories"][0]["reps"][0]["name"] = "王" * 200
    parse_rules(data, "rules.yaml")


# ------------------------------------------------------------ sla.warn_before


@pytest.mark.parametrize(
    ("warn_before", "first_touch_warning"),
    [("15m", timedelta(minutes=45)), ("25%", timedelta(minutes=45)), ("PT10M", timedelta(minutes=50)), (300, None)],
)
def test_warnings_come_a_duration_or_a_share_before_the_deadline(
    warn_before: Any, first_touch_warning: timedelta | None
) -> None:
    data = example_data()
    data["sla"]["warn_before"] = warn_before
    sla = parse_rules(data).sla
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    at = sla.warn_at(start, start + timedelta(hours=1))
    if first_touch_warning is None:  # 300 seconds
        assert at == start + timedelta(minutes=55)
    else:
        assert at == start + first_touch_warning


def test_a_share_scales_with_the_window_and_a_long_warning_is_none() -> None:
    data = example_data()
    data["sla"]["warn_before"] = "25%"
    sla = parse_rules(data).sla
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert sla.warn_at(start, start + timedelta(hours=48)) == start + timedelta(hours=36)
    data["sla"]["warn_before"] = "2h"
    sla = parse_rules(data).sla
    assert sla.warn_at(start, start + timedelta(hours=1)) is None  # it would come before the start
    data["sla"].pop("warn_before")
    assert parse_rules(data).sla.warn_at(start, start + timedelta(hours=1)) is None


@pytest.mark.parametrize("bad", ["0%", "100%", "-5m", "soon", "0s", "abc%"])
def test_a_bad_warn_before_names_the_key(bad: str) -> None:
    data = example_data()
    data["sla"]["warn_before"] = bad
    message = rejected(data)
    assert "sla.warn_before:" in message
    assert message.count("\n") == 1, "one error, not one per union member"


# ------------------------------------------------------------ notifications


def notifications(**section: Any) -> dict[str, Any]:
    data = example_data()
    data["notifications"] = section
    return data


HOOK = {"id": "crm", "url": "https://crm.example.com/hooks", "secret_env": "CRM_SECRET", "events": ["lead.assigned"]}


def test_the_examples_commented_channels_are_valid_once_uncommented() -> None:
    """The example shows every channel commented out; uncommented, it must load as documented."""
    text = EXAMPLE.read_text(encoding="utf-8")
    section = text[text.index("\nnotifications:") :]
    uncommented = re.sub(r"(?m)^  # (?=\s*[a-z-]+:|\s+- |\s+[a-z_]+:)", "  ", section)
    data = example_data()
    data["notifications"] = yaml.safe_load(uncommented)["notifications"]
    rules = parse_rules(data)
    n = rules.notifications
    assert [w.id for w in n.webhooks] == ["crm"]
    assert n.webhooks[0].secret_env == "LEADRELAY_WEBHOOK_CRM_SECRET"  # noqa: S105 - a variable's name
    assert set(n.webhooks[0].events) == set(NotificationType)
    assert [(s.id, s.territory, s.person) for s in n.slack] == [
        ("nordics-sales", "nordics", None),
        ("karin-ek", None, "karin.ek"),
        ("marketing", None, None),
    ]
    assert n.email is not None and set(n.email.events) == set(NotificationType)
    assert n.marketing.emails == ["marketing@leadrelay.example"]


def test_no_notifications_section_means_nobody_is_notified() -> None:
    data = example_data()
    data.pop("notifications")
    n = parse_rules(data).notifications
    assert (n.webhooks, n.slack, n.email, n.marketing.emails) == ([], [], None, [])


def test_unknown_event_types_and_keys_name_the_key() -> None:
    message = rejected(notifications(webhooks=[{**HOOK, "events": ["lead.assigned", "lead.won"]}]))
    assert "notifications.webhooks.0.events.1" in message
    message = rejected(notifications(webhooks=[{**HOOK, "secret": "whsec_inline"}]))
    assert "notifications.webhooks.0.secret" in message
    message = rejected(notifications(webhooks=[{**HOOK, "events": []}]))
    assert "notifications.webhooks.0.events" in message
    message = rejected(notifications(pager=[]))
    assert "notifications.pager" in message


def test_secrets_are_named_by_environment_variable() -> None:
    message = rejected(notifications(webhooks=[{**HOOK, "secret_env": "whsec_abc123"}]))
    assert "notifications.webhooks.0.secret_env" in message
    message = rejected(
        notifications(slack=[{"id": "s", "url_env": "https://hooks.slack.com/x", "events": ["sla.breached"]}])
    )
    assert "notifications.slack.0.url_env" in message


def test_webhook_urls_must_be_http() -> None:
    message = rejected(notifications(webhooks=[{**HOOK, "url": "ftp://crm.example.com/x"}]))
    assert "notifications.webhooks.0.url" in message and "is not an http(s) URL" in message


def test_slack_scopes_must_exist_and_not_both() -> None:
    slack = {"id": "s", "url_env": "SLACK_URL", "events": ["sla.breached"]}
    assert "notifications.slack 's': unknown territory 'atlantis'" in rejected(
        notifications(slack=[{**slack, "territory": "atlantis"}])
    )
    assert "notifications.slack 's': unknown person 'nobody'" in rejected(
        notifications(slack=[{**slack, "person": "nobody"}])
    )
    assert "give territory or person, not both" in rejected(
        notifications(slack=[{**slack, "person": "karin.ek", "territory": "dach"}])
    )
    ok = parse_rules(notifications(slack=[{**slack, "person": "astrid.lindqvist"}]))  # a rep is a person too
    assert ok.notifications.slack[0].person == "astrid.lindqvist"


def test_endpoint_ids_are_unique() -> None:
    slack = {"id": "crm", "url_env": "SLACK_URL", "events": ["sla.breached"]}
    assert "endpoint id(s) used twice across webhooks and slack: crm" in rejected(
        notifications(webhooks=[HOOK], slack=[slack])
    )


def test_recycled_leads_by_email_need_marketings_addresses() -> None:
    message = rejected(notifications(email={"events": ["lead.recycled"]}))
    assert "notifications.email: lead.recycled goes to notifications.marketing.emails, which is empty" in message
    rules = parse_rules(notifications(email={"events": ["lead.recycled"]}, marketing={"emails": [" Mkt@Example.COM "]}))
    assert rules.notifications.marketing.emails == ["Mkt@example.com"]
    message = rejected(notifications(marketing={"emails": ["not an address"]}))
    assert "notifications.marketing.emails.0" in message
