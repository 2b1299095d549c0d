"""Reading the Segment/RudderStack tracking spec: who a message is about and what it records."""

from __future__ import annotations

import gzip
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from intake.connectors.segment import Message, map_message, occurred_at, parse_message, visitor_key
from intake.connectors.tracking import _Refused, gunzip
from intake.domain import lead_id_for
from leadrelay.events import ActivityRecorded, ActivityType, LeadIdentified, Visitor, VisitorActivityRecorded
from leadrelay.rules import Tracking

NS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
RULES = Tracking(events={"Demo Requested": ActivityType.DEMO_REQUESTED})


def mapped(raw: dict[str, Any], rules: Tracking = RULES) -> Any:
    message = parse_message(raw, ["batch", 0], None)
    assert isinstance(message, Message), message
    return map_message(message, ["batch", 0], rules, NS, NOW)


def test_an_identify_with_an_email_joins_the_anonymous_id_and_the_user_id() -> None:
    out = mapped(
        {
            "type": "identify",
            "userId": "crm-1",
            "anonymousId": "anon-1",
            "traits": {"email": "Ann@Nordvik.se", "firstName": "Ann", "title": "CTO", "company": {"name": "Nordvik"}},
        }
    )
    event = out.event
    assert isinstance(event, LeadIdentified)
    assert event.lead_id == lead_id_for("ann@nordvik.se", NS)
    assert (event.contact.first_name, event.contact.job_title, event.contact.company) == ("Ann", "CTO", "Nordvik")
    assert event.visitors == [Visitor(kind="anonymous", id="anon-1"), Visitor(kind="user", id="crm-1")]


def test_a_user_id_that_is_an_address_is_the_lead() -> None:
    out = mapped({"type": "track", "userId": "ann@nordvik.se", "event": "Demo Requested"})
    assert isinstance(out.event, ActivityRecorded)
    assert out.event.activity is ActivityType.DEMO_REQUESTED
    assert out.event.lead_id == lead_id_for("ann@nordvik.se", NS)


def test_an_anonymous_page_view_is_the_visitors_keyed_by_the_visitor() -> None:
    out = mapped({"type": "page", "anonymousId": "a-9", "context": {"page": {"url": "https://x.example/pricing"}}})
    event = out.event
    assert isinstance(event, VisitorActivityRecorded)
    assert event.visitor == Visitor(kind="anonymous", id="a-9")
    assert event.lead_id == visitor_key(event.visitor, NS) != visitor_key(Visitor(kind="user", id="a-9"), NS)
    assert (event.activity, event.url) == (ActivityType.PAGE_VIEWED, "https://x.example/pricing")


def test_unmapped_track_names_follow_the_rules() -> None:
    assert mapped({"type": "track", "anonymousId": "a", "event": "Clicked Logo"}).ignored
    rules = Tracking(unmapped=ActivityType.CONTENT_DOWNLOADED)
    out = mapped({"type": "track", "anonymousId": "a", "event": "Clicked Logo"}, rules)
    assert out.event.activity is ActivityType.CONTENT_DOWNLOADED


def test_group_gives_the_company_of_a_known_lead_and_nothing_for_a_visitor() -> None:
    out = mapped(
        {"type": "group", "userId": "ann@nordvik.se", "groupId": "g", "traits": {"name": "Nordvik", "employees": 300}}
    )
    assert isinstance(out.event, LeadIdentified)
    assert (out.event.contact.company, out.event.contact.company_size, out.event.visitors) == ("Nordvik", 300, [])
    assert mapped({"type": "group", "anonymousId": "a", "traits": {"name": "X"}}).ignored


def test_alias_joins_the_other_id_to_the_address() -> None:
    out = mapped({"type": "alias", "userId": "ann@nordvik.se", "previousId": "anon-1"})
    assert isinstance(out.event, LeadIdentified)
    assert {v.key for v in out.event.visitors} == {"anonymous:anon-1", "user:anon-1"}
    assert mapped({"type": "alias", "userId": "u-2", "previousId": "anon-1"}).ignored


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ({"type": "page"}, ["userId"]),
        ({"type": "track", "anonymousId": "a"}, ["event"]),
        ({"type": "track", "anonymousId": "a\u0000", "event": "x"}, ["anonymousId"]),
        ({"type": "identify", "userId": "ann@nordvik.se", "traits": {"phone": "12"}}, ["traits", "phone"]),
        ({"type": "page", "anonymousId": "a", "properties": {"x\ud800": "1"}}, ["properties", "x\\ud800"]),
        ({"type": "alias", "userId": "ann@nordvik.se"}, ["previousId"]),
    ],
)
def test_every_problem_is_located_under_the_message(raw: dict[str, Any], loc: list[str]) -> None:
    message = parse_message(raw, ["batch", 0], None)
    errors = message if isinstance(message, list) else map_message(message, ["batch", 0], RULES, NS, NOW).errors
    assert ["body", "batch", 0, *loc] in [e["loc"] for e in errors], errors


def test_a_path_names_its_type() -> None:
    message = parse_message({"anonymousId": "a"}, [], "page")
    assert isinstance(message, Message) and message.type == "page"
    errors = parse_message({"type": "track", "anonymousId": "a"}, [], "page")
    assert isinstance(errors, list) and errors[0]["loc"] == ["body", "type"]


def test_a_clients_clock_is_corrected_by_its_sent_at() -> None:
    fast = NOW + timedelta(hours=1)  # the browser's clock is an hour ahead
    m = Message(type="page", anonymousId="a", timestamp=fast - timedelta(seconds=30), sentAt=fast)
    assert occurred_at(m, NOW) == NOW - timedelta(seconds=30)
    assert occurred_at(Message(type="page", anonymousId="a", timestamp=NOW + timedelta(days=1)), NOW) == NOW
    assert occurred_at(Message(type="page", anonymousId="a"), NOW) == NOW


def test_decompression_stops_at_the_limit() -> None:
    assert gunzip(gzip.compress(b"x" * 100), 100) == b"x" * 100
    with pytest.raises(_Refused) as bomb:
        gunzip(gzip.compress(b"x" * 10_000_000), 1000)
    assert bomb.value.status == 413
    with pytest.raises(_Refused) as broken:
        gunzip(b"not gzip", 1000)
    assert broken.value.status == 400
    with pytest.raises(_Refused) as truncated:
        gunzip(gzip.compress(b"x" * 1000)[:20], 10_000)
    assert truncated.value.status == 400
