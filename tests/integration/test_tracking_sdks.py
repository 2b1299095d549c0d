"""The unmodified Segment and RudderStack Python SDKs, pointed at intake (served by uvicorn on
127.0.0.1 in front of the in-process services), on SQLite and on PostgreSQL: identify, track and
page calls end up on the right lead, and a visitor's anonymous page views count once it is
identified."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import rudderstack.analytics as rudder
import segment.analytics as segment
import uvicorn

from intake.domain import lead_id_for
from leadrelay.settings import Settings
from tests.e2e.distributed import free_port
from tests.harness import SOURCE_KEYS, Harness, running

WRITE_KEY = SOURCE_KEYS["website"]


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[Harness, str]]:
    async with running(settings) as h:
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(h.transport.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        for _ in range(500):  # ten seconds at most
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started, "uvicorn did not start"
        try:
            yield h, f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task


def lead_of(h: Harness, email: str) -> str:
    return lead_id_for(email, uuid.UUID(h.runtime.settings.lead_id_namespace))


def rules_of(body: dict[str, Any]) -> dict[str, int]:
    return {r["rule"]: r["points"] for r in body["reasons"]}


async def test_segment_sdk_anonymous_page_views_then_identify(served: tuple[Harness, str]) -> None:
    h, url = served
    errors: list[Any] = []
    client = segment.Client(WRITE_KEY, host=url, sync_mode=True, on_error=lambda e, batch: errors.append(e))

    def before_identify() -> None:
        for _ in range(2):
            client.page(anonymous_id="anon-7", name="Pricing", properties={"url": "https://leadrelay.example/pricing"})

    await asyncio.to_thread(before_identify)
    assert errors == []
    await h.settle()
    email = "vera.visitor@visitor-test.se"
    lead = lead_of(h, email)
    r = await h.client.get(f"/v1/leads/{lead}/score")
    assert r.status_code == 404, "an anonymous visitor is no lead yet"

    def identify_then_more() -> None:
        client.identify(
            user_id="crm-4711",
            anonymous_id="anon-7",
            traits={"email": email, "firstName": "Vera", "lastName": "Visitor", "title": "CTO", "company": "Vis AB"},
        )
        # Later anonymous events of the joined visitor, and one by the user id, go to the lead.
        client.page(anonymous_id="anon-7", properties={"url": "https://leadrelay.example/pricing"})
        client.track(user_id="crm-4711", event="Content Downloaded", properties={"title": "Guide"})

    await asyncio.to_thread(identify_then_more)
    assert errors == []
    await h.settle()
    # Three pricing views (two before the identify), capped at 30; the download; the CTO title:
    # 68, over the threshold, so the lead went to sales.
    body = await h.wait_for(f"/v1/leads/{lead}/score", status="mql")
    reasons = rules_of(body)
    assert reasons["viewed pricing (x3)"] == 30, reasons
    assert reasons["any page view (x3)"] == 3
    assert reasons["downloaded content (x1)"] == 10
    assert reasons["decision-maker title"] == 25
    assert body["score"] == 68


async def test_rudderstack_sdk_gzip_track_hands_over(served: tuple[Harness, str]) -> None:
    h, url = served
    errors: list[Any] = []
    client = rudder.Client(WRITE_KEY, host=url, sync_mode=True, gzip=True, on_error=lambda e, b: errors.append(e))
    email = "rolf.rudder@hanse-maschinen.de"

    def calls() -> None:
        client.page(anonymous_id="r-anon-1", name="Home", properties={"url": "https://leadrelay.example/customers"})
        client.identify(user_id=email, anonymous_id="r-anon-1", traits={"firstName": "Rolf", "country": "DE"})
        client.track(user_id=email, event="Demo Requested")

    await asyncio.to_thread(calls)
    assert errors == []
    lead = lead_of(h, email)
    await h.wait_for(f"/v1/leads/{lead}/assignment", rep_id="jonas.becker")
    body = (await h.client.get(f"/v1/leads/{lead}/score")).json()
    assert body["status"] == "handraiser"
    assert "viewed case studies or services (x1)" in rules_of(body)


async def test_batch_is_all_or_nothing_and_names_the_field(served: tuple[Harness, str]) -> None:
    h, url = served
    good = {"type": "page", "anonymousId": "a-1", "properties": {"url": "https://leadrelay.example/pricing"}}
    bad = {"type": "track", "userId": "x\u0000y", "event": "Demo Requested"}
    async with httpx.AsyncClient(base_url=url, auth=(WRITE_KEY, "")) as c:
        r = await c.post("/v1/batch", json={"batch": [good, bad, {"type": "track", "anonymousId": "a-2"}]})
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["code"] == "invalid_request" and body["message"]
        locs = [e["loc"] for e in body["detail"]]
        assert ["body", "batch", 1, "userId"] in locs and ["body", "batch", 2, "event"] in locs, locs
        # text/plain (analytics.js) with the key in the body, gzip; the short path.
        raw = json.dumps({"batch": [good], "writeKey": WRITE_KEY}).encode()
        r = await c.post(
            "/v1/b",
            content=gzip.compress(raw),
            headers={"Content-Type": "text/plain", "Content-Encoding": "gzip", "Authorization": ""},
        )
        assert r.status_code == 200 and r.json() == {"success": True}, r.text
        # A gzip bomb: small on the wire, past 500 KB decompressed.
        bomb = gzip.compress(b'{"batch": [' + b" " * (600 * 1024) + b"]}")
        r = await c.post("/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"})
        assert r.status_code == 413, r.text
        # 32 KB per message.
        big = {**good, "properties": {"url": "https://x.example/", "blob": "x" * 33000}}
        r = await c.post("/v1/track", json={**big, "type": "track", "event": "Demo Requested"})
        assert r.status_code == 413, r.text
        r = await c.post("/v1/track", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "not JSON" in r.json()["detail"]
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/v1/page", json=good)
        assert r.status_code == 401
        r = await c.post("/v1/page", json=good, auth=("not-a-key", ""))
        assert r.status_code == 401
        crm = base64.b64encode(f"{SOURCE_KEYS['crm']}:".encode()).decode()
        r = await c.post("/v1/page", json=good, headers={"Authorization": f"Basic {crm}"})
        assert r.status_code == 403


@pytest.mark.parametrize(
    ("path", "message", "loc"),
    [
        ("/v1/identify", {"userId": "u", "traits": {"email": "a@b.se", "phone": "12"}}, ["traits", "phone"]),
        ("/v1/track", {"anonymousId": "a"}, ["event"]),
        ("/v1/page", {"properties": {"url": "https://x.example/"}}, ["userId"]),
        ("/v1/group", {"userId": "g@grp-test.se", "timestamp": "yesterday"}, ["timestamp"]),
        ("/v1/alias", {"userId": "a@alias-test.se"}, ["previousId"]),
        ("/v1/track", {"type": "page", "anonymousId": "a", "event": "x"}, ["type"]),
        ("/v1/page", {"anonymousId": "a", "properties": {"n\ud800": "1"}}, ["properties", "n\\ud800"]),
        ("/v1/identify", {"userId": "a@b-test.se", "traits": {"t\ud800": "1"}}, ["traits", "t\\ud800"]),
    ],
)
async def test_bad_input_per_endpoint(
    served: tuple[Harness, str], path: str, message: dict[str, Any], loc: list[str]
) -> None:
    _, url = served
    async with httpx.AsyncClient(base_url=url, auth=(WRITE_KEY, "")) as c:
        # As JSON escapes: a lone surrogate cannot be sent as UTF-8.
        r = await c.post(path, content=json.dumps(message), headers={"Content-Type": "text/plain"})
    assert r.status_code == 400, r.text
    assert ["body", *loc] in [e["loc"] for e in r.json()["detail"]], r.text


async def test_form_with_anonymous_id_joins_the_visitor(served: tuple[Harness, str]) -> None:
    h, url = served
    async with httpx.AsyncClient(base_url=url, auth=(WRITE_KEY, "")) as c:
        for page in ("/pricing", "/customers"):
            m = {"type": "page", "anonymousId": "form-anon", "properties": {"url": f"https://leadrelay.example{page}"}}
            assert (await c.post("/v1/p", json=m)).status_code == 200
    await h.settle()
    r = await h.as_(None).post(
        "/v1/forms/newsletter/submissions", data={"email": "fiona.form@form-test.se", "hutk": "form-anon"}
    )
    assert r.status_code == 202, r.text
    lead = r.json()["lead_id"]
    body = await h.wait_for(f"/v1/leads/{lead}/score", status="lead")
    reasons = rules_of(body)
    assert reasons["viewed pricing (x1)"] == 15 and reasons["any page view (x2)"] == 2, reasons


async def test_a_message_sent_twice_counts_once(served: tuple[Harness, str]) -> None:
    h, url = served
    view = {
        "type": "page",
        "messageId": "ajs-next-1",
        "anonymousId": "dup-anon",
        "properties": {"url": "https://leadrelay.example/pricing"},
    }
    who = {"type": "identify", "messageId": "ajs-next-2", "anonymousId": "dup-anon", "userId": "dora.dup@dup-test.se"}
    async with httpx.AsyncClient(base_url=url, auth=(WRITE_KEY, "")) as c:
        for _ in range(2):  # an SDK's retry after a lost answer
            assert (await c.post("/v1/batch", json={"batch": [view, who]})).status_code == 200
        assert (await c.post("/v1/page", json=view)).status_code == 200
    await h.settle()
    body = await h.wait_for(f"/v1/leads/{lead_of(h, 'dora.dup@dup-test.se')}/score", status="lead")
    assert rules_of(body) == {"viewed pricing (x1)": 15, "any page view (x1)": 1}
