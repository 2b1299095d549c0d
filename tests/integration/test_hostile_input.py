"""Hostile and sloppy input, on SQLite and on PostgreSQL: what a front door accepts, every service can process.

The reproductions of the input-policy issue answer 4xx in both modes; arbitrary Unicode in
every text field of every POST (hypothesis) gets the same answer on both databases, never a
5xx; every accepted demo request ends assigned; nothing is dead-lettered.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from leadrelay.bus.memory import MemoryBus
from leadrelay.events import (
    LEADS_ASSIGNED,
    LEADS_INTAKE,
    ActivityType,
    Contact,
    Envelope,
    FormSubmitted,
    Handoff,
    LeadAssigned,
    Qualification,
    dlq_topic,
)
from leadrelay.settings import Settings
from tests.harness import Harness, running, settings_for
from tests.hostile import (
    Post,
    answer,
    dead_letters,
    event_posts,
    feedback_posts,
    form_bytes,
    form_posts,
    json_bytes,
)

NUL = "N\x00"
ANNA = {"email": "anna.berg@hostile-input.se", "first_name": "Anna", "country": "SE"}


@pytest.fixture
async def h(settings: Settings) -> AsyncIterator[Harness]:
    async with running(settings) as harness:
        yield harness


def fields_named(r: httpx.Response) -> list[str]:
    return [str(e["loc"][-1]) for e in r.json()["detail"]]


async def assigned_lead(h: Harness, email: str = "rep.test@hostile-input.se") -> tuple[str, str]:
    r = await h.client.post("/v1/forms/demo-request/submissions", json={"email": email, "country": "DE"})
    assert r.status_code == 202, r.text
    lead = r.json()["lead_id"]
    assignment = await h.wait_for(f"/v1/leads/{lead}/assignment")
    await h.settle()  # feedback has learnt of it
    return lead, assignment["rep_id"]


# ------------------------------------------------------------ the reproductions, both databases


@pytest.mark.parametrize(
    "field", ["last_name", "company", "first_name", "job_title", "industry", "phone", "utm_source", "message"]
)
async def test_a_nul_in_any_form_field_is_422_naming_it(h: Harness, field: str) -> None:
    r = await h.client.post("/v1/forms/demo-request/submissions", json={**ANNA, field: NUL})
    assert r.status_code == 422, r.text
    assert fields_named(r) == [field]
    assert "NUL character (U+0000)" in r.text
    r = await h.client.post(
        "/v1/forms/demo-request/submissions",
        content=form_bytes({**ANNA, field: NUL}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422, r.text
    assert fields_named(r) == [field]


async def test_an_unpaired_surrogate_is_422_naming_the_field_not_503(h: Harness) -> None:
    for field in ("last_name", "company", "notes"):
        r = await h.client.post(
            "/v1/forms/demo-request/submissions",
            content=json_bytes({**ANNA, field: "Berg\ud800"}),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422, r.text
        assert fields_named(r) == [field]
        assert "unpaired surrogate (U+D800)" in r.text
    # In a field's name: the error names it, with the surrogate written as an escape.
    r = await h.client.post(
        "/v1/forms/demo-request/submissions",
        content=json_bytes({**ANNA, "x\udfff": "y"}),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert fields_named(r) == ["x\\udfff"]
    # In a urlencoded form a surrogate can only come as bytes that are not UTF-8: refused the same
    # way, naming the field (it used to be decoded as U+FFFD and accepted).
    r = await h.client.post(
        "/v1/forms/demo-request/submissions",
        content=form_bytes({**ANNA, "company": "Berg\ud800"}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422, r.text
    assert fields_named(r) == ["company"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"url": "https://x.se/" + NUL}, ["body", "url"]),
        ({"url": "https://x.se/\ud800"}, ["body", "url"]),
        ({"message_id": NUL}, ["body", "message_id"]),
        ({"properties": {"title": NUL}}, ["body", "properties", "title"]),
        ({"properties": {"title": "x" * 1001}}, ["body", "properties", "title"]),
        ({"properties": {"k" * 101: "x"}}, ["body", "properties", "k" * 101, "[key]"]),
    ],
)
async def test_a_behaviour_event_with_bad_text_is_422_naming_the_field(
    h: Harness, body: dict[str, Any], loc: list[str]
) -> None:
    r = await h.client.post(
        "/v1/events",
        content=json_bytes({"type": "page_viewed", "email": ANNA["email"], **body}),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [loc]


async def test_a_touch_or_disposition_with_bad_text_is_422_naming_the_field(h: Harness) -> None:
    lead, rep = await assigned_lead(h)
    for kind, body, field in [
        ("touches", {"rep_id": rep, "channel": "call", "note": NUL}, "note"),
        ("touches", {"rep_id": rep, "channel": "call", "note": "\udc00"}, "note"),
        ("touches", {"rep_id": rep + "\x00", "channel": "call"}, "rep_id"),
        ("dispositions", {"rep_id": rep, "disposition": "junk", "reason": "no budget" + NUL}, "reason"),
        ("dispositions", {"rep_id": rep, "disposition": "junk", "reason": "\ud800"}, "reason"),
    ]:
        r = await h.client.post(
            f"/v1/leads/{lead}/{kind}", content=json_bytes(body), headers={"content-type": "application/json"}
        )
        assert r.status_code == 422, r.text
        assert fields_named(r) == [field]
    feedback = (await h.client.get(f"/v1/leads/{lead}/feedback")).json()
    assert feedback["touches"] == [] and feedback["dispositions"] == []


@pytest.mark.parametrize(
    ("path", "param", "good"),
    [
        ("/v1/alerts", "territory", "nordics"),
        ("/v1/metrics/funnel", "territory", "nordics"),
        # a 500 on PostgreSQL before (found by schemathesis against the distributed stack)
        ("/v1/notifications/deliveries", "endpoint", "webhook:crm"),
        ("/v1/notifications/deliveries", "lead_id", "8c0c1c9e-2f49-5a4e-9a55-3b7f2c9d0a11"),
    ],
)
async def test_a_nul_in_a_query_parameter_is_422(h: Harness, path: str, param: str, good: str) -> None:
    r = await h.client.get(path, params={param: good + "\x00"})
    assert r.status_code == 422, r.text
    assert fields_named(r) == [param]
    assert (await h.client.get(path, params={param: good})).status_code == 200


async def test_text_is_stored_cleaned_and_nfc_in_both_modes(h: Harness) -> None:
    r = await h.client.post(
        "/v1/forms/demo-request/submissions",
        json={
            "email": "A\u030asa.berg@hostile-input.se",
            "first_name": "A\u030asa\x07",
            "last_name": "Berg\r\nLund",
            "company": "Nordvik\x85 Logistik\u202e AB",
            "job_title": "Head\tof IT",
            "message": "line 1\r\nline 2\x1b[0m\rline 3",
            "utm\x00_source": None,  # an empty field is skipped, its name is still checked
        },
    )
    assert r.status_code == 422 and fields_named(r) == ["utm\x00_source"]
    r = await h.client.post(
        "/v1/forms/demo-request/submissions",
        json={
            "email": "A\u030asa.berg@hostile-input.se",
            "first_name": "A\u030asa\x07",
            "last_name": "Berg\r\nLund",
            "company": "Nordvik\x85 Logistik\u202e AB",
            "job_title": "Head\tof IT",
            "message": "line 1\r\nline 2\x1b[0m\rline 3",
        },
    )
    assert r.status_code == 202, r.text
    # The lead id is derived from the NFC address: the composed spelling is the same lead.
    r2 = await h.client.post("/v1/events", json={"type": "page_viewed", "email": "\u00c5sa.berg@hostile-input.se"})
    assert r2.json()["lead_id"] == r.json()["lead_id"]
    handoff = (await h.wait_for(f"/v1/leads/{r.json()['lead_id']}/assignment"))["handoff"]
    assert handoff["contact"] == {
        "email": "\u00e5sa.berg@hostile-input.se",
        "first_name": "\u00c5sa",
        "last_name": "Berg Lund",
        "company": "Nordvik Logistik\u202e AB",
        "job_title": "Head of IT",
        "phone": None,
        "country": None,
        "company_size": None,
        "industry": None,
        "website": None,
        "email_type": "business",
        "company_domain": "hostile-input.se",
    }
    assert handoff["custom"] == {"message": "line 1\nline 2[0m\nline 3"}
    assert (handoff["account"], handoff["matched_by"]) == ("Nordvik Logistics", "account")


async def test_a_long_property_title_is_stored(h: Harness) -> None:
    """1000 characters is what intake accepts; the activity's detail column is 200 wide on PostgreSQL."""
    r = await h.client.post(
        "/v1/events",
        json={"type": "content_downloaded", "email": ANNA["email"], "properties": {"title": "t" * 1000}},
    )
    assert r.status_code == 202, r.text
    await h.wait_for(f"/v1/leads/{r.json()['lead_id']}/score")
    await h.settle()
    assert dead_letters(h.bus) == []


@pytest.mark.parametrize(
    "path",
    ["/v1/forms/demo-request/submissions", "/v1/events", "/v1/leads/{lead}/touches", "/v1/leads/{lead}/dispositions"],
)
async def test_deep_and_oversize_bodies_are_refused_before_parsing(h: Harness, path: str) -> None:
    lead, _ = await assigned_lead(h)
    path = path.format(lead=lead)
    json_type = {"content-type": "application/json"}
    r = await h.client.post(path, content=b"[" * 100_000 + b"]" * 100_000, headers=json_type)
    assert r.status_code == 413, r.text  # 200 KB: over the body limit before its depth matters
    r = await h.client.post(path, content=b"[" * 30_000 + b"]" * 30_000, headers=json_type)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["type"] == "json_too_deep"
    r = await h.client.post(path, content=b'{"a": {"b": {"c": 1}}}', headers=json_type)
    assert r.status_code == 422  # shallow: the route's own answer
    r = await h.client.post(path, json={"email": ANNA["email"], "notes": "x" * 70_000})
    assert r.status_code == 413


async def test_a_100000_deep_body_is_422_when_the_body_limit_allows_it(tmp_path: Path) -> None:
    async with running(settings_for(tmp_path, max_body_bytes=1_000_000), services=["intake"]) as h:
        for path in ("/v1/forms/demo-request/submissions", "/v1/events"):
            for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
                r = await h.client.post(path, content=body, headers={"content-type": "application/json"})
                assert r.status_code == 422, r.text


async def test_too_many_form_fields_is_422(h: Harness) -> None:
    fields = {f"f{i}": "x" for i in range(200)}
    for content, ctype in [
        (form_bytes({**ANNA, **fields}), "application/x-www-form-urlencoded"),
        (json_bytes({**ANNA, **fields}), "application/json"),
    ]:
        r = await h.client.post("/v1/forms/demo-request/submissions", content=content, headers={"content-type": ctype})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body"]
        assert "200" in r.json()["detail"][0]["msg"]


async def foreign_record_dead_letter(h: Harness, lead: str, email: str, spoil: Callable[[dict[str, Any]], None]) -> str:
    """Something other than intake writes a FormSubmitted of ``lead`` to leads.intake, spoiled by
    ``spoil``; a good lead after it is assigned all the same (the partition keeps flowing), nothing of
    the spoiled one is stored, and its one dead letter's reason is returned."""
    good = FormSubmitted(
        lead_id=lead,
        form_id="demo-request",
        submitted_at=h.clock.now(),
        contact=Contact(email=email, last_name="N"),
    )
    record = Envelope.new(good, source="/elsewhere", time=h.clock.now()).to_record()
    bad = json.loads(record.value)
    spoil(bad)
    bus = h.bus
    assert isinstance(bus, MemoryBus)
    await bus.publish(
        [type(record)(topic=LEADS_INTAKE, key=record.key, value=json.dumps(bad).encode(), headers=record.headers)]
    )
    r = await h.client.post("/v1/forms/demo-request/submissions", json=ANNA)
    await h.wait_for(f"/v1/leads/{r.json()['lead_id']}/assignment")
    await h.settle()
    dead = bus.records(dlq_topic(LEADS_INTAKE))
    assert len(dead) == 1
    assert (await h.client.get(f"/v1/leads/{lead}/score")).status_code == 404
    return dead[0].header("dlq_error") or ""


async def test_a_foreign_record_with_bad_text_is_dead_lettered_not_stored(h: Harness) -> None:
    """Something other than intake writes to leads.intake: the record is refused as invalid
    (dead letter with the reason), nothing of it is stored, and the partition keeps flowing."""

    def nul(bad: dict[str, Any]) -> None:
        bad["contact"]["last_name"] = "N\x00"

    lead = "8c0c1c9e-2f49-5a4e-9a55-3b7f2c9d0a11"
    error = await foreign_record_dead_letter(h, lead, "foreign@hostile-input.se", nul)
    assert "undecodable" in error and "last_name" in error and "NUL" in error


# ------------------------------------------------------------ hypothesis: SQLite and PostgreSQL agree


class Deployments:
    """Two embedded deployments side by side, on SQLite and on PostgreSQL, driven from a plain
    (synchronous) hypothesis test through one event loop."""

    def __init__(self, runner: asyncio.Runner, harnesses: dict[str, Harness]) -> None:
        self.runner = runner
        self.harnesses = harnesses

    def post(self, post: Post) -> dict[str, httpx.Response]:
        async def send() -> dict[str, httpx.Response]:
            out = {}
            for mode, h in self.harnesses.items():
                out[mode] = await h.client.post(
                    post.path, content=post.content, headers={"content-type": post.content_type}
                )
            return out

        return self.runner.run(send())


@pytest.mark.postgres
def test_arbitrary_text_in_every_post_gets_the_same_answer_on_sqlite_and_postgres(
    tmp_path: Path, pg_url: str, pg_schema_cleanup: str
) -> None:
    with asyncio.Runner() as runner:
        stack = contextlib.AsyncExitStack()
        harnesses = {
            "sqlite": runner.run(stack.enter_async_context(running(settings_for(tmp_path / "sqlite")))),
            "postgres": runner.run(
                stack.enter_async_context(
                    running(settings_for(tmp_path / "pg", database_url=pg_url, schema_prefix=pg_schema_cleanup))
                )
            ),
        }
        try:
            _property(Deployments(runner, harnesses))
        finally:
            runner.run(stack.aclose())


def _property(d: Deployments) -> None:
    leads = {mode: d.runner.run(assigned_lead(h)) for mode, h in d.harnesses.items()}
    assert leads["sqlite"] == leads["postgres"]  # same lead id, same rep from the same round robin
    lead, rep = leads["sqlite"]
    to_assign: set[str] = set()
    seen: collections.Counter[tuple[str, int]] = collections.Counter()

    @hsettings(
        max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
    )
    @given(st.one_of(form_posts(), event_posts(), feedback_posts(lead, rep)))
    def every_post(post: Post) -> None:
        got = d.post(post)
        for mode, r in got.items():
            assert r.status_code < 500, (mode, r.status_code, r.text)
        assert answer(got["sqlite"]) == answer(got["postgres"])
        status = got["sqlite"].status_code
        seen[(post.path.split("/")[-1], status)] += 1
        if status == 202 and post.qualifying_lead:
            to_assign.add(got["sqlite"].json()["lead_id"])

    every_post()
    print("answers (route, status): count", dict(sorted(seen.items())))
    assert to_assign, "no example was accepted: the strategies send nothing valid"

    async def outcome() -> None:
        for lead_id in sorted(to_assign):
            handoffs = [(await h.wait_for(f"/v1/leads/{lead_id}/assignment"))["handoff"] for h in d.harnesses.values()]
            assert handoffs[0]["contact"] == handoffs[1]["contact"]  # stored the same on both databases
            assert handoffs[0]["custom"] == handoffs[1]["custom"]
        for mode, h in d.harnesses.items():
            await h.settle()
            assert dead_letters(h.bus) == [], mode

    d.runner.run(outcome())
    print(f"{len(to_assign)} accepted demo requests, every one assigned on both databases; no dead letter")


async def test_activity_types_of_the_strategy_are_the_api_s() -> None:
    from tests.hostile import ACTIVITY_TYPES

    assert set(ACTIVITY_TYPES) == {t.value for t in ActivityType} - {"form_submitted"}


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_a_foreign_record_with_a_time_outside_utc_s_range_is_dead_lettered(h: Harness, moment: str) -> None:
    """A time with an offset that puts it before year 1 or after year 9999 in UTC cannot be stored:
    the event's own validation refuses it (dead letter with the reason) instead of a handler error
    that would hold the group up for good."""

    def out_of_range(bad: dict[str, Any]) -> None:
        bad["submitted_at"] = moment

    lead = "8c0c1c9e-2f49-5a4e-9a55-3b7f2c9d0a12"
    error = await foreign_record_dead_letter(h, lead, "foreign.time@hostile-input.se", out_of_range)
    assert "undecodable" in error and "submitted_at" in error


# A time that is valid ISO 8601 but, its offset applied, before year 1 or after 9999 in UTC.
OUT_OF_RANGE = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
async def test_a_time_outside_utc_s_range_is_4xx_naming_the_field_never_a_500(h: Harness, moment: str) -> None:
    event = {"type": "page_viewed", "email": "a@hostile-input.se", "occurred_at": moment}
    r = await h.client.post("/v1/events", json=event)
    assert r.status_code == 422 and fields_named(r) == ["occurred_at"], r.text
    r = await h.client.put("/v1/reps/astrid.lindqvist/availability", json={"status": "away", "until": moment})
    assert r.status_code == 422 and fields_named(r) == ["until"], r.text
    tracking = h.as_("website-tracking")
    for kind in ("track", "page", "identify"):
        message = {"userId": "a@hostile-input.se", "event": "Demo Requested", "messageId": f"m-{kind}"}
        r = await tracking.post(f"/v1/{kind}", json={**message, "timestamp": moment})
        assert r.status_code == 400 and fields_named(r) == ["timestamp"], r.text
    # Both in range, but the clock correction (receipt - (sentAt - timestamp)) is not.
    skewed = {"userId": "a@hostile-input.se", "event": "Demo Requested", "messageId": "m-skew"}
    r = await tracking.post(
        "/v1/track", json={**skewed, "timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z"}
    )
    assert r.status_code == 400 and fields_named(r) == ["sentAt"], r.text
    await h.settle()
    assert dead_letters(h.bus) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("rep_id", "r" * 101), ("territory", "t" * 101), ("cycle", 2**31), ("cycle", 2**70)],
)
async def test_a_foreign_assignment_the_databases_cannot_hold_is_dead_lettered(
    h: Harness, field: str, value: object
) -> None:
    """The event models hold what the consumers' columns hold (rep and territory ids of at most 100
    characters, a cycle of 32 bits): a record past them is invalid (a dead letter with the reason)
    on both databases, not a handler error that would hold the groups up for good on one of them."""
    lead = "8c0c1c9e-2f49-5a4e-9a55-3b7f2c9d0a13"
    good = LeadAssigned(
        lead_id=lead,
        cycle=1,
        rep_id="astrid.lindqvist",
        territory="nordics",
        assigned_at=h.clock.now(),
        handoff=Handoff(
            contact=Contact(email="foreign.assignment@hostile-input.se"),
            qualification=Qualification.HANDRAISER,
            score=5,
            reasons=[],
            activities=[],
            matched_by="territory",
        ),
    )
    record = Envelope.new(good, source="/elsewhere", time=h.clock.now()).to_record()
    bad = json.loads(record.value)
    bad[field] = value
    bus = h.bus
    assert isinstance(bus, MemoryBus)
    await bus.publish(
        [type(record)(topic=LEADS_ASSIGNED, key=record.key, value=json.dumps(bad).encode(), headers=record.headers)]
    )
    r = await h.client.post("/v1/forms/demo-request/submissions", json=ANNA)
    await h.wait_for(f"/v1/leads/{r.json()['lead_id']}/sla")
    await h.settle()
    dead = bus.records(dlq_topic(LEADS_ASSIGNED))
    assert dead and all(field in (d.header("dlq_error") or "") for d in dead), [d.header("dlq_error") for d in dead]
    assert (await h.client.get(f"/v1/leads/{lead}/sla")).json().get("clocks", []) == []


URLENCODED = {"content-type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"last_name=M%FCller", "last_name"),  # Latin-1, sent as if it were UTF-8
        (b"last_name=N%ED%A0%80", "last_name"),  # an unpaired surrogate, in UTF-8's form
        (b"company=%C3", "company"),  # a character cut in half
        (b"la%FFst=x", "la\\xffst"),  # a field name
    ],
)
async def test_a_form_post_whose_bytes_are_not_utf8_is_422_naming_the_field(
    h: Harness, body: bytes, field: str
) -> None:
    """Not a replacement character stored in the field's place (and 202), as Starlette's parser
    did: the same answer as the JSON body with the same bytes."""
    content = b"email=bytes%40hostile-input.se&country=SE&" + body
    for path, extra in [
        ("/v1/forms/demo-request/submissions", b""),
        ("/servlet/servlet.WebToLead", b"&oid=00D5e000000LEAD"),
    ]:
        r = await h.as_(None).post(path, content=content + extra, headers=URLENCODED)
        assert r.status_code == 422, (path, r.text)
        assert field in fields_named(r) and "not utf-8 text" in r.text, (path, r.text)
    await h.settle()
    assert dead_letters(h.bus) == []


async def test_a_form_post_in_raw_utf8_or_a_declared_charset_is_read_as_sent(h: Harness) -> None:
    """`curl -d 'last_name=Müller'` sends UTF-8 without percent-encoding (Starlette read it as
    Latin-1: "MÃ¼ller"); a page in ISO-8859-1 that says so in the content type is read in it."""
    for email, content, headers in [
        ("raw.utf8@hostile-input.se", "last_name=Müller".encode(), URLENCODED),
        (
            "latin1@hostile-input.se",
            b"last_name=M%FCller",
            {"content-type": URLENCODED["content-type"] + "; charset=ISO-8859-1"},
        ),
        # A browser fills HTML's _charset_ field with the encoding it used.
        ("charset.field@hostile-input.se", b"_charset_=windows-1252&last_name=M%FCller", URLENCODED),
    ]:
        body = f"email={email.replace('@', '%40')}&country=SE&".encode() + content
        r = await h.as_(None).post("/v1/forms/demo-request/submissions", content=body, headers=headers)
        assert r.status_code == 202, r.text
        assignment = await h.wait_for(f"/v1/leads/{r.json()['lead_id']}/assignment")
        assert assignment["handoff"]["contact"]["last_name"] == "Müller"
        assert "_charset_" not in assignment["handoff"]["custom"]
    # Salesforce's Web-to-Lead forms name theirs in an `encoding` field.
    body = b"oid=00D5e000000LEAD&encoding=ISO-8859-1&email=w2l.latin1%40hostile-input.se&last_name=M%FCller&country=SE"
    r = await h.as_(None).post("/servlet/servlet.WebToLead", content=body, headers=URLENCODED)
    assert r.status_code == 202, r.text
    lead = (
        await h.as_(None).post("/v1/forms/contact-sales/submissions", json={"email": "w2l.latin1@hostile-input.se"})
    ).json()["lead_id"]
    assignment = await h.wait_for(f"/v1/leads/{lead}/assignment")
    assert assignment["handoff"]["contact"]["last_name"] == "Müller"


async def test_a_browser_s_form_post_that_is_not_text_goes_back_to_its_page_with_the_error(h: Harness) -> None:
    """A plain HTML post (a legacy page posting in its own charset without saying so) lands on the
    form's page with the field's error, as other field errors do, not on a JSON 422."""
    page = "https://www.leadrelay.example/demo"
    r = await h.as_(None).post(
        "/v1/forms/demo-request/submissions",
        content=b"email=legacy%40hostile-input.se&last_name=M%FCller",
        headers={**URLENCODED, "Accept": "text/html", "Referer": page},
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith(page + "?lr_form=demo-request&lr_error.last_name=")
