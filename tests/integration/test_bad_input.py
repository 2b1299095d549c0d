"""Bad input on every endpoint: a clear 4xx that says what was wrong, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from leadrelay.bus.memory import MemoryBus
from leadrelay.events import Record
from tests.harness import Harness, running, settings_for

LEAD = "0b3f3c64-5d7e-5c4e-8a55-3b7f2c9d0a11"  # well-formed, never seen


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running(settings_for(tmp_path)) as harness:
        yield harness


def errors_at(body: dict[str, Any]) -> set[str]:
    return {str(e["loc"][-1]) for e in body["detail"]}


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"first_name": "Åsa"}, "email", "required"),
        ({"email": "not-an-address"}, "email", "@"),
        ({"email": "a@b.se", "country": "Atlantis"}, "country", "unknown country"),
        ({"email": "a@b.se", "phone": "12"}, "phone", "phone"),
        ({"email": "a@b.se", "country": "SE", "phone": "+46 1"}, "phone", ""),
        ({"email": "a@b.se", "company_size": "lots"}, "company_size", "employees"),
        ({"email": "a@b.se", "website": "nope"}, "website", "web address"),
        ({"email": "a@b.se", "notes": "x" * 1001}, "notes", "1000"),
        ({"email": "a@b.se", "tags": ["a", "b"]}, "tags", "string"),
        ({"email": "a@b.se", "nested": {"a": 1}}, "nested", "string"),
        ({"email": "a@b.se", "opt_in": True}, "opt_in", "string"),
    ],
)
async def test_form_field_errors(h: Harness, body: dict[str, Any], field: str, needle: str) -> None:
    r = await h.client.post("/v1/forms/newsletter/submissions", json=body)
    assert r.status_code == 422, r.text
    assert field in errors_at(r.json())
    assert needle in r.text


async def test_form_reports_every_error_at_once(h: Harness) -> None:
    r = await h.client.post("/v1/forms/newsletter/submissions", json={"email": "x", "country": "Nowhere", "phone": "1"})
    assert r.status_code == 422
    assert errors_at(r.json()) == {"email", "country", "phone"}


@pytest.mark.parametrize(
    ("content", "ctype", "code"),
    [
        (b"{not json", "application/json", 422),
        (b"[1, 2]", "application/json", 422),
        (b'"just a string"', "application/json", 422),
        (b"email=a@b.se", "text/plain", 415),
        (b"", "application/json", 422),
    ],
)
async def test_form_body_errors(h: Harness, content: bytes, ctype: str, code: int) -> None:
    r = await h.client.post("/v1/forms/newsletter/submissions", content=content, headers={"content-type": ctype})
    assert r.status_code == code, r.text
    assert r.json()["detail"]


async def test_unknown_form_is_404_and_lists_the_known_ones(h: Harness) -> None:
    r = await h.client.post("/v1/forms/nope/submissions", json={"email": "a@b.se"})
    assert r.status_code == 404
    assert "demo-request" in r.json()["detail"]


async def test_html_form_post_is_accepted(h: Harness) -> None:
    r = await h.client.post(
        "/v1/forms/demo-request/submissions",
        content="email=jan%40bakker-test.nl&firstname=Jan&organisation=Bakker+BV&country=Netherlands",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 202, r.text
    lead = r.json()["lead_id"]
    assignment = await h.wait_for(f"/v1/leads/{lead}/assignment")
    assert assignment["handoff"]["contact"]["company"] == "Bakker BV"
    assert assignment["territory"] == "benelux"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "page_viewed"}, "body"),
        ({"type": "teleported", "email": "a@b.se"}, "type"),
        ({"type": "page_viewed", "email": "nope"}, "email"),
        ({"type": "page_viewed", "lead_id": "not-a-uuid"}, "lead_id"),
        ({"type": "page_viewed", "email": "a@b.se", "occurred_at": "2026-01-01T10:00:00"}, "occurred_at"),
        ({"type": "page_viewed", "email": "a@b.se", "occurred_at": "2999-01-01T10:00:00Z"}, "occurred_at"),
        ({"type": "page_viewed", "email": "a@b.se", "lead_id": LEAD}, "lead_id"),
        ({"type": "page_viewed", "email": "a@b.se", "surprise": 1}, "surprise"),
        ({"type": "page_viewed", "email": "a@b.se", "properties": {"a": ["b"]}}, "a"),
    ],
)
async def test_event_errors(h: Harness, body: dict[str, Any], field: str) -> None:
    r = await h.client.post("/v1/events", json=body)
    assert r.status_code == 422, r.text
    locs = {str(part) for e in r.json()["detail"] for part in e["loc"]}
    assert field in locs, r.text


@pytest.mark.parametrize("path", ["score", "assignment", "sla", "feedback"])
async def test_lead_lookups(h: Harness, path: str) -> None:
    assert (await h.client.get(f"/v1/leads/not-a-uuid/{path}")).status_code == 422
    r = await h.client.get(f"/v1/leads/{LEAD}/{path}")
    assert r.status_code == 404
    assert LEAD in r.json()["detail"]


@pytest.mark.parametrize(
    ("kind", "body", "code", "needle"),
    [
        ("touches", {"rep_id": "olivia.smith", "channel": "call"}, 404, "never assigned"),
        ("touches", {"rep_id": "olivia.smith", "channel": "pigeon"}, 422, "channel"),
        ("touches", {"rep_id": "", "channel": "call"}, 422, "rep_id"),
        ("touches", {"rep_id": "nobody", "channel": "call"}, 422, "unknown rep"),
        ("touches", {"rep_id": "olivia.smith", "channel": "call", "extra": 1}, 422, "extra"),
        ("dispositions", {"rep_id": "olivia.smith", "disposition": "accepted"}, 404, "never assigned"),
        ("dispositions", {"rep_id": "olivia.smith", "disposition": "maybe"}, 422, "disposition"),
        ("dispositions", {"rep_id": "olivia.smith", "disposition": "junk"}, 422, "reason is required"),
        ("dispositions", {"rep_id": "olivia.smith", "disposition": "recycle", "reason": "  "}, 422, "reason"),
    ],
)
async def test_feedback_errors(h: Harness, kind: str, body: dict[str, Any], code: int, needle: str) -> None:
    r = await h.client.post(f"/v1/leads/{LEAD}/{kind}", json=body)
    assert r.status_code == code, r.text
    assert needle in r.text
    r = await h.client.post(f"/v1/leads/not-a-uuid/{kind}", json=body)
    assert r.status_code == 422


@pytest.mark.parametrize(
    "path",
    [
        "/v1/leads?status=unheard-of",
        "/v1/leads?limit=0",
        "/v1/alerts?since=2026-01-01T00:00:00",
        "/v1/alerts?since=yesterday",
        "/v1/metrics/funnel?since=2026-01-01T00:00:00",
        "/v1/review-board?limit=100000",
        "/v1/suppressions?limit=-1",
    ],
)
async def test_query_errors(h: Harness, path: str) -> None:
    r = await h.client.get(path)
    assert r.status_code == 422, r.text


async def test_garbage_never_gives_a_500(h: Harness) -> None:
    bodies: Sequence[bytes] = [
        b"\x00\xff",
        b"null",
        b"1e309",
        b'{"email": null}',
        b'{"email": 42}',
        b'{"' + b"a" * 5000 + b'": 1}',
        '{"email": "\u00e5@\u00e4.se"}'.encode(),
    ]
    paths = [
        "/v1/forms/demo-request/submissions",
        "/v1/events",
        f"/v1/leads/{LEAD}/touches",
        f"/v1/leads/{LEAD}/dispositions",
    ]
    for path in paths:
        for body in bodies:
            r = await h.client.post(path, content=body, headers={"content-type": "application/json"})
            assert 200 <= r.status_code < 500, (path, body[:40], r.status_code, r.text)


class BrokenBus(MemoryBus):
    async def publish(self, records: Sequence[Record]) -> None:
        raise ConnectionError("broker unreachable")


async def test_intake_answers_503_when_neither_the_broker_nor_its_spool_can_take_the_event(tmp_path: Path) -> None:
    # A spool of one event: the first is spooled (202), the next finds it full.
    async with running(settings_for(tmp_path, intake_spool_max_events=1), services=["intake"], bus=BrokenBus()) as h:
        r = await h.client.post("/v1/forms/demo-request/submissions", json={"email": "a@b-test.se"})
        assert r.status_code == 202, r.text
        r = await h.client.post("/v1/forms/demo-request/submissions", json={"email": "b@b-test.se"})
        assert r.status_code == 503
        assert r.headers["retry-after"] == "2"
        assert "retry" in r.json()["detail"]
        assert r.json()["dependency"] == "kafka"


async def test_the_tracking_api_answers_503_naming_the_dependency_as_every_route(tmp_path: Path) -> None:
    """Segment's and RudderStack's endpoints keep their error shape (code, message) and, as every
    503 of the API, say which dependency is down and when to retry."""
    async with running(settings_for(tmp_path, intake_spool_max_events=1), services=["intake"], bus=BrokenBus()) as h:
        r = await h.client.post("/v1/forms/demo-request/submissions", json={"email": "fill@b-test.se"})
        assert r.status_code == 202, r.text  # the spool is full now
        tracking = h.as_("website-tracking")
        for path, body in [
            ("/v1/track", {"userId": "a@b-test.se", "event": "Demo Requested", "messageId": "t-1"}),
            ("/v1/batch", {"batch": [{"type": "page", "anonymousId": "anon-1", "messageId": "p-1"}]}),
        ]:
            r = await tracking.post(path, json=body)
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "2"
            assert r.json()["dependency"] == "kafka" and r.json()["code"] == "unavailable"
            assert "spool is full" in r.json()["detail"]
