"""Who may call what: every endpoint x every kind of caller, on SQLite and on PostgreSQL.

The callers: two reps (Astrid in Nordics, Jonas in DACH), two managers (Karin: Nordics and
Benelux; Tom: DACH, Greater China, rest of world), ops, an admin, the three example sources
(tracking, CRM, monitoring), no credential, an expired token, a token signed with a key no
service knows, and a token forged with a known key id but another key. Each answer must be
the expected 2xx, 401 or 403, and no 2xx answer to a rep or a manager may carry another
person's lead, rep or contact data. A test also fails if an endpoint is missing from the
matrix, so a new route must state who may call it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from leadrelay.auth import Tokens, generate_key
from leadrelay.settings import Settings
from tests.harness import SIGNING_KEY, Harness, bearer, example_rules, running

# Leads, by the rep they go to (named accounts make that deterministic).
A_EMAIL = "ann.andersson@nordvik.se"  # Nordvik Logistics -> astrid.lindqvist (nordics)
B_EMAIL = "bernd.bauer@hanse-maschinen.de"  # Hanse Maschinenbau -> jonas.becker (dach)
C_EMAIL = "cees.claes@claes-test.nl"  # NL -> benelux, round robin: sanne.devries first
E_EMAIL = "eva.eijk@eijk-test.nl"  # NL -> benelux, round robin: pieter.janssens next
D_EMAIL = "dora.dahl@dahl-test.se"  # a newsletter sign-up: marketing's, never handed over
UNKNOWN_LEAD = "0b3f3c64-5d7e-5c4e-8a55-3b7f2c9d0a11"

PERSONS = ["astrid", "jonas", "karin", "tom", "ops", "admin"]
SOURCES = ["tracking", "crm", "prometheus"]
CALLERS = {
    "astrid": "astrid.lindqvist",
    "jonas": "jonas.becker",
    "karin": "karin.ek",
    "tom": "tom.weber",
    "ops": "ops.desk",
    "admin": "rita.admin",
    "tracking": "website-tracking",
    "crm": "crm",
    "prometheus": "prometheus",
}
BAD = ["anonymous", "expired", "unknown_key", "forged"]


@dataclass
class World:
    h: Harness
    leads: dict[str, str]  # A, B, C, D, E -> lead id


async def submit(h: Harness, form: str, email: str, **fields: str) -> str:
    r = await h.as_(None).post(f"/v1/forms/{form}/submissions", json={"email": email, **fields})
    assert r.status_code == 202, r.text
    return str(r.json()["lead_id"])


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    async with running(settings) as h:
        leads = {
            "A": await submit(h, "demo-request", A_EMAIL, company="Nordvik Logistics AB", country="SE"),
            "B": await submit(h, "demo-request", B_EMAIL, company="Hanse Maschinenbau GmbH", country="DE"),
            "C": await submit(h, "demo-request", C_EMAIL, country="NL"),
        }
        await h.wait_for(f"/v1/leads/{leads['C']}/assignment", rep_id="sanne.devries")
        leads["E"] = await submit(h, "contact-sales", E_EMAIL, country="NL")
        leads["D"] = await submit(h, "newsletter", D_EMAIL, country="SE")
        owners = {"A": "astrid.lindqvist", "B": "jonas.becker", "C": "sanne.devries", "E": "pieter.janssens"}
        for key, rep in owners.items():
            await h.wait_for(f"/v1/leads/{leads[key]}/assignment", rep_id=rep)
        await h.wait_for(f"/v1/leads/{leads['D']}/score", status="lead")
        await h.settle()
        # Pieter hands E back (the review board), then every first touch is overdue (alerts).
        r = await h.as_("pieter.janssens").post(
            f"/v1/leads/{leads['E']}/dispositions", json={"disposition": "recycle", "reason": "no budget"}
        )
        assert r.status_code == 202, r.text
        await h.settle()
        h.clock.advance(timedelta(minutes=61))
        for key in ("A", "B", "C"):
            for _ in range(200):
                if (await h.client.get(f"/v1/leads/{leads[key]}/sla")).json()["alerts"]:
                    break
                await h.settle()
        await h.settle()
        yield World(h=h, leads=leads)


def credentials(h: Harness, caller: str) -> dict[str, str]:
    if caller in CALLERS:
        return h.credential(CALLERS[caller])
    if caller == "anonymous":
        return {}
    ops = example_rules().person("ops.desk")
    assert ops is not None
    if caller == "expired":
        issued = datetime.now(UTC) - timedelta(hours=13)
        return bearer(Tokens(SIGNING_KEY).issue(ops, timedelta(hours=12), issued))
    if caller == "unknown_key":
        return bearer(Tokens(generate_key()).issue(ops))
    # Forged: the real key's id in the header, signed with another key.
    kid = Tokens(SIGNING_KEY).current.kid
    now = int(datetime.now(UTC).timestamp())
    claims = {"iss": "leadrelay", "aud": "leadrelay", "sub": "rita.admin", "role": "admin"}
    claims |= {"iat": now, "exp": now + 3600, "jti": "forged"}
    return bearer(jwt.encode(claims, generate_key(), algorithm="HS256", headers={"kid": kid}))


def row(ok: int, *allowed: str, others: int = 403) -> dict[str, int]:
    """Expected status per caller: ``ok`` for ``allowed``, ``others`` (403) for the rest, 401 for
    the bad credentials."""
    out = {c: (ok if c in allowed else others) for c in CALLERS}
    out.update(dict.fromkeys(BAD, 401))
    return out


def public(ok: int) -> dict[str, int]:
    return dict.fromkeys([*CALLERS, *BAD], ok)


EVERYONE = (*PERSONS, *SOURCES)
NORDICS = ("astrid", "karin", "ops", "admin")  # who may see lead A (Astrid's, Nordics)
NORDICS_AND_CRM = (*NORDICS, "crm")

_PAGE = {"type": "page", "anonymousId": "matrix-visitor", "properties": {"url": "https://leadrelay.example/"}}
_CALL_BODIES: dict[str, dict[str, Any]] = {
    "batch": {"batch": [_PAGE]},
    "identify": {"userId": "fresh.face@fresh-test.se", "anonymousId": "matrix-visitor"},
    "track": {"anonymousId": "matrix-visitor", "event": "Demo Requested"},
    "page": _PAGE,
    "group": {"userId": "fresh.face@fresh-test.se", "traits": {"name": "Fresh AB"}},
    "alias": {"userId": "fresh.face@fresh-test.se", "previousId": "matrix-visitor"},
}
TRACKING_CALLS = [(path, _CALL_BODIES[call]) for call in _CALL_BODIES for path in (f"/v1/{call}", f"/v1/{call[0]}")]

# (method, route path, concrete path, JSON body, expected status per caller)
MATRIX: list[tuple[str, str, str, dict[str, Any] | None, dict[str, int]]] = [
    # intake
    (
        "POST",
        "/v1/forms/{form_id}/submissions",
        "/v1/forms/newsletter/submissions",
        {"email": "fresh.face@fresh-test.se"},
        public(202),
    ),
    ("GET", "/v1/forms", "/v1/forms", None, public(200)),
    ("GET", "/v1/forms/{form_id}/embed.js", "/v1/forms/demo-request/embed.js", None, public(200)),
    ("GET", "/v1/forms/{form_id}/embed", "/v1/forms/demo-request/embed", None, public(200)),
    ("GET", "/v1/track.js", "/v1/track.js", None, public(200)),
    (
        "POST",
        "/submissions/v3/integration/submit/{portalId}/{formGuid}",
        "/submissions/v3/integration/submit/4711/1b2c3d4e-0000-4000-8000-000000000001",
        {"fields": [{"name": "email", "value": "fresh.face@fresh-test.se"}]},
        public(200),
    ),
    # Public; a Web-to-Lead post is a form post (urlencoded): this JSON body is a 415 for everyone.
    ("POST", "/servlet/servlet.WebToLead", "/servlet/servlet.WebToLead", {"oid": "00D5e000000LEAD"}, public(415)),
    (
        "POST",
        "/v1/events",
        "/v1/events",
        {"type": "page_viewed", "email": "fresh.face@fresh-test.se", "url": "https://leadrelay.example/pricing"},
        row(202, *PERSONS, "tracking", "crm"),
    ),
    # scoring
    ("GET", "/v1/leads/{lead_id}/score", "/v1/leads/{A}/score", None, row(200, *NORDICS_AND_CRM)),
    ("GET", "/v1/leads/{lead_id}/score", "/v1/leads/{D}/score", None, row(200, "ops", "admin", "crm")),
    ("GET", "/v1/leads/{lead_id}/score", f"/v1/leads/{UNKNOWN_LEAD}/score", None, row(404, "ops", "admin", "crm")),
    ("GET", "/v1/leads/{lead_id}/consent", "/v1/leads/{A}/consent", None, row(200, *NORDICS_AND_CRM)),
    ("GET", "/v1/leads/{lead_id}/consent", "/v1/leads/{D}/consent", None, row(200, "ops", "admin", "crm")),
    (
        "GET",
        "/v1/leads/{lead_id}/consent",
        f"/v1/leads/{UNKNOWN_LEAD}/consent",
        None,
        row(404, "ops", "admin", "crm"),
    ),
    ("GET", "/v1/leads", "/v1/leads", None, row(200, *PERSONS, "crm")),
    ("GET", "/v1/lead-definition", "/v1/lead-definition", None, row(200, *PERSONS, "crm")),
    # routing
    ("GET", "/v1/leads/{lead_id}/assignment", "/v1/leads/{A}/assignment", None, row(200, *NORDICS_AND_CRM)),
    (
        "GET",
        "/v1/leads/{lead_id}/assignment",
        "/v1/leads/{B}/assignment",
        None,
        row(200, "jonas", "tom", "ops", "admin", "crm"),
    ),
    ("GET", "/v1/suppressions", "/v1/suppressions", None, row(200, *PERSONS, "crm")),
    ("GET", "/v1/territories", "/v1/territories", None, row(200, *PERSONS)),
    (
        "PUT",
        "/v1/reps/{rep_id}/availability",
        "/v1/reps/mikko.virtanen/availability",
        {"status": "away"},
        row(200, "karin", "ops", "admin"),
    ),
    # sla-monitor
    ("GET", "/v1/leads/{lead_id}/sla", "/v1/leads/{A}/sla", None, row(200, *NORDICS_AND_CRM)),
    ("GET", "/v1/alerts", "/v1/alerts", None, row(200, *PERSONS)),
    ("GET", "/v1/alerts", "/v1/alerts?territory=nordics", None, row(200, *NORDICS)),
    ("GET", "/v1/me", "/v1/me", None, row(200, *EVERYONE)),
    ("GET", "/v1/me/leads", "/v1/me/leads", None, row(200, *PERSONS)),
    ("GET", "/v1/me/leads", "/v1/me/leads?territory=dach", None, row(200, "jonas", "tom", "ops", "admin")),
    ("GET", "/v1/notifications/deliveries", "/v1/notifications/deliveries", None, row(200, "ops", "admin")),
    (
        "GET",
        "/v1/notifications/deliveries/{delivery_id}",
        "/v1/notifications/deliveries/999999",
        None,
        row(404, "ops", "admin"),
    ),
    (
        "POST",
        "/v1/notifications/deliveries/{delivery_id}/redeliver",
        "/v1/notifications/deliveries/999999/redeliver",
        None,
        row(404, "ops", "admin"),
    ),
    ("GET", "/v1/metrics/sla", "/v1/metrics/sla", None, row(200, *PERSONS)),
    ("GET", "/v1/metrics/sla", "/v1/metrics/sla?territory=dach", None, row(200, "jonas", "tom", "ops", "admin")),
    ("GET", "/v1/sla-policy", "/v1/sla-policy", None, row(200, *PERSONS, "crm")),
    # feedback
    ("POST", "/v1/leads/{lead_id}/touches", "/v1/leads/{A}/touches", {"channel": "call"}, row(202, *NORDICS_AND_CRM)),
    (
        "POST",
        "/v1/leads/{lead_id}/touches",
        "/v1/leads/{A}/touches",
        {"channel": "email", "rep_id": "mikko.virtanen"},
        row(202, "karin", "ops", "admin", "crm"),
    ),
    (
        "POST",
        "/v1/leads/{lead_id}/dispositions",
        "/v1/leads/{A}/dispositions",
        {"disposition": "accepted"},
        row(202, *NORDICS_AND_CRM),
    ),
    ("GET", "/v1/leads/{lead_id}/feedback", "/v1/leads/{A}/feedback", None, row(200, *NORDICS_AND_CRM)),
    ("GET", "/v1/review-board", "/v1/review-board", None, row(200, *PERSONS)),
    ("GET", "/v1/metrics/funnel", "/v1/metrics/funnel", None, row(200, *PERSONS)),
    ("GET", "/v1/metrics/funnel", "/v1/metrics/funnel?territory=dach", None, row(200, "jonas", "tom", "ops", "admin")),
    # intake: the Segment/RudderStack tracking API takes a tracking source's key (its write key);
    # a person's token is no write key (401), another source's key is refused (403).
    *[
        ("POST", path, path, body, row(200, "tracking", others=401) | {"crm": 403, "prometheus": 403})
        for path, body in TRACKING_CALLS
    ],
    # every service
    ("GET", "/livez", "/livez", None, public(200)),
    ("GET", "/readyz", "/readyz", None, public(200)),
    ("GET", "/asyncapi.json", "/asyncapi.json", None, public(200)),
    ("GET", "/metrics", "/metrics", None, row(200, "ops", "admin", "prometheus")),
]


def forbidden_text(world: World, caller: str) -> list[str]:
    """What must never appear in a 2xx answer to ``caller``: other people's leads (ids and
    addresses) and reps. Ops, admins and sources see everything they are let in to."""
    lead = world.leads
    emails = {"A": A_EMAIL, "B": B_EMAIL, "C": C_EMAIL, "D": D_EMAIL, "E": E_EMAIL}
    visible = {
        "astrid": {"A"},
        "jonas": {"B"},
        "karin": {"A", "C", "E"},
        "tom": {"B"},
    }.get(caller)
    if visible is None:
        return []
    rules = example_rules()
    me = rules.person(CALLERS[caller])
    assert me is not None
    hidden = [k for k in lead if k not in visible]
    other_reps = [r.id for t in rules.territories if t.id not in me.territories for r in t.reps]
    return [lead[k] for k in hidden] + [emails[k] for k in hidden] + other_reps


async def test_every_endpoint_for_every_caller(world: World) -> None:
    h = world.h
    failures = []
    for method, _route, template, body, expected in MATRIX:
        path = template.format(**world.leads)
        for caller, want in expected.items():
            r = await h.as_(None).request(method, path, json=body, headers=credentials(h, caller))
            if r.status_code != want:
                failures.append(f"{caller:>12} {method} {path}: {r.status_code}, expected {want}: {r.text[:150]}")
                continue
            if want == 401:
                challenge = r.headers.get("www-authenticate", "")
                if not challenge.startswith("Bearer"):
                    failures.append(f"{caller:>12} {method} {path}: 401 without WWW-Authenticate: Bearer")
            if 200 <= want < 300:
                leaked = [x for x in forbidden_text(world, caller) if x in r.text]
                if leaked:
                    failures.append(f"{caller:>12} {method} {path}: answer carries {leaked}")
    assert not failures, "\n" + "\n".join(failures)


async def test_the_matrix_covers_every_route(world: World) -> None:
    spec = (await world.h.as_(None).get("/openapi.json")).json()
    routes = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    covered = {(method, route) for method, route, *_ in MATRIX}
    assert routes - covered == set(), f"endpoints missing from the access matrix: {sorted(routes - covered)}"
    assert covered - routes == set(), f"the matrix names endpoints that do not exist: {sorted(covered - routes)}"


async def test_docs_are_public(world: World) -> None:
    anonymous = world.h.as_(None)
    assert (await anonymous.get("/docs")).status_code == 200
    spec = (await anonymous.get("/openapi.json")).json()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


TERRITORY_FILTERS = ["/v1/alerts", "/v1/me/leads", "/v1/metrics/sla", "/v1/metrics/funnel"]


async def test_a_territory_filter_with_a_typo_is_refused_not_an_empty_list(world: World) -> None:
    h = world.h
    known = [t.id for t in example_rules().territories]
    spec = (await h.as_(None).get("/openapi.json")).json()
    routes = {
        path
        for path, ops in spec["paths"].items()
        for op in ops.values()
        for p in op.get("parameters", [])
        if p["name"] == "territory"
    }
    assert routes == set(TERRITORY_FILTERS), "a list with a territory filter is missing here"
    for path in TERRITORY_FILTERS:
        for who in ("ops.desk", "rita.admin"):
            r = await h.as_(who).get(path, params={"territory": "nordcs"})
            assert r.status_code == 422, f"{who} {path}: {r.status_code} {r.text[:200]}"
            (error,) = r.json()["detail"]
            assert error["loc"] == ["query", "territory"]
            assert error["msg"] == f"unknown territory 'nordcs' (known: {', '.join(known)})"
            assert (await h.as_(who).get(path, params={"territory": "nordics"})).status_code == 200
        # A rep or a manager: not theirs, whether it exists or not (their own are named).
        r = await h.as_("karin.ek").get(path, params={"territory": "nordcs"})
        assert r.status_code == 403 and "(yours: benelux, nordics)" in r.text, r.text
        assert (await h.as_("karin.ek").get(path, params={"territory": "nordics"})).status_code == 200


async def test_lists_hold_only_what_the_caller_may_see(world: World) -> None:
    h, lead = world.h, world.leads

    async def ids(who: str, path: str, key: str = "lead_id") -> set[str]:
        r = await h.as_(who).get(path)
        assert r.status_code == 200, r.text
        return {item[key] for item in r.json()}

    assert await ids("astrid.lindqvist", "/v1/leads") == {lead["A"]}
    assert await ids("karin.ek", "/v1/leads") == {lead["A"], lead["C"], lead["E"]}
    assert await ids("tom.weber", "/v1/leads") == {lead["B"]}
    assert await ids("ops.desk", "/v1/leads") == set(lead.values())
    assert await ids("crm", "/v1/leads") == set(lead.values())

    assert await ids("astrid.lindqvist", "/v1/suppressions") == {lead["A"]}
    assert await ids("karin.ek", "/v1/suppressions") == {lead["A"], lead["C"]}  # E was handed back
    assert await ids("rita.admin", "/v1/suppressions") == {lead["A"], lead["B"], lead["C"]}

    assert await ids("jonas.becker", "/v1/alerts") == {lead["B"]}
    assert await ids("karin.ek", "/v1/alerts") == {lead["A"], lead["C"]}
    assert await ids("ops.desk", "/v1/alerts") == {lead["A"], lead["B"], lead["C"]}
    assert await ids("tom.weber", "/v1/alerts?territory=greater-china") == set()

    assert await ids("pieter.janssens", "/v1/review-board") == {lead["E"]}
    assert await ids("astrid.lindqvist", "/v1/review-board") == set()
    assert await ids("karin.ek", "/v1/review-board") == {lead["E"]}
    assert await ids("tom.weber", "/v1/review-board") == set()

    assert await ids("astrid.lindqvist", "/v1/me/leads") == {lead["A"]}
    assert await ids("karin.ek", "/v1/me/leads") == {lead["A"], lead["C"]}
    assert await ids("ops.desk", "/v1/me/leads") == {lead["A"], lead["B"], lead["C"]}

    territories = (await h.as_("astrid.lindqvist").get("/v1/territories")).json()
    assert [(t["id"], [r["id"] for r in t["reps"]]) for t in territories] == [("nordics", ["astrid.lindqvist"])]
    territories = (await h.as_("karin.ek").get("/v1/territories")).json()
    assert [t["id"] for t in territories] == ["nordics", "benelux"]
    assert territories[0]["managers"] == ["karin.ek"]
    assert (territories[0]["name"], territories[0]["manager_names"]) == ("Nordics", ["Karin Ek"])
    assert len((await h.as_("ops.desk").get("/v1/territories")).json()) == 5

    funnel = (await h.as_("jonas.becker").get("/v1/metrics/funnel")).json()
    assert funnel["handed_to_sales"] == 1
    funnel = (await h.as_("karin.ek").get("/v1/metrics/funnel")).json()
    assert funnel["handed_to_sales"] == 3
    assert funnel["dispositions"]["recycle"] == 1
    funnel = (await h.as_("rita.admin").get("/v1/metrics/funnel")).json()
    assert funnel["handed_to_sales"] == 4

    # SLA attainment: A, B and C missed their first touch; E was handed back in time (both met).
    sla = (await h.as_("jonas.becker").get("/v1/metrics/sla")).json()
    assert sla["first_touch"] == {"met": 0, "breached": 1, "running": 0, "attainment": 0.0}
    assert sla["disposition"] == {"met": 0, "breached": 0, "running": 1, "attainment": None}
    sla = (await h.as_("karin.ek").get("/v1/metrics/sla")).json()
    assert sla["first_touch"] == {"met": 1, "breached": 2, "running": 0, "attainment": round(1 / 3, 4)}
    assert sla["disposition"] == {"met": 1, "breached": 0, "running": 2, "attainment": 1.0}
    sla = (await h.as_("ops.desk").get("/v1/metrics/sla?territory=greater-china")).json()
    assert sla["first_touch"] == {"met": 0, "breached": 0, "running": 0, "attainment": None}
    sla = (await h.as_("rita.admin").get("/v1/metrics/sla")).json()
    assert (sla["first_touch"]["met"], sla["first_touch"]["breached"]) == (1, 3)
    policy = (await h.as_("astrid.lindqvist").get("/v1/sla-policy")).json()
    assert policy == {
        "handraiser": {"first_touch_seconds": 3600, "disposition_seconds": 2 * 86400},
        "mql": {"first_touch_seconds": 48 * 3600, "disposition_seconds": 5 * 86400},
    }


async def test_me_says_who_is_calling(world: World) -> None:
    h = world.h
    me = (await h.as_("karin.ek").get("/v1/me")).json()
    assert {k: me[k] for k in ("kind", "id", "name", "role", "territories", "email")} == {
        "kind": "person",
        "id": "karin.ek",
        "name": "Karin Ek",
        "role": "manager",
        "territories": ["benelux", "nordics"],
        "email": "karin.ek@leadrelay.example",
    }
    assert datetime.fromisoformat(me["expires_at"]) > datetime.now(UTC) + timedelta(hours=11)
    me = (await h.as_("astrid.lindqvist").get("/v1/me")).json()
    assert (me["role"], me["territories"]) == ("rep", ["nordics"])
    assert (await h.as_("crm").get("/v1/me")).json() == {"kind": "source", "id": "crm", "name": "CRM", "role": "crm"}


async def test_touches_take_the_rep_from_the_credential_and_record_who(world: World) -> None:
    h, lead = world.h, world.leads["A"]
    r = await h.as_("astrid.lindqvist").post(f"/v1/leads/{lead}/touches", json={"channel": "call"})
    assert r.status_code == 202
    r = await h.as_("astrid.lindqvist").post(
        f"/v1/leads/{lead}/touches", json={"channel": "call", "rep_id": "astrid.lindqvist"}
    )
    assert r.status_code == 202, "naming oneself is fine"
    r = await h.as_("karin.ek").post(f"/v1/leads/{lead}/touches", json={"channel": "meeting"})
    assert r.status_code == 202
    r = await h.as_("karin.ek").post(f"/v1/leads/{lead}/touches", json={"channel": "call", "rep_id": "jonas.becker"})
    assert r.status_code == 403, "Jonas is not in a territory Karin manages"
    r = await h.as_("crm").post(f"/v1/leads/{lead}/dispositions", json={"disposition": "accepted"})
    assert r.status_code == 202
    await h.settle()

    feedback = (await h.as_("astrid.lindqvist").get(f"/v1/leads/{lead}/feedback")).json()
    assert [(t["rep_id"], t["logged_by"]["id"], t["logged_by"]["role"]) for t in feedback["touches"]] == [
        ("astrid.lindqvist", "astrid.lindqvist", "rep"),
        ("astrid.lindqvist", "astrid.lindqvist", "rep"),
        ("astrid.lindqvist", "karin.ek", "manager"),
    ]
    assert feedback["dispositions"][0]["logged_by"] == {"kind": "source", "id": "crm", "role": "crm", "name": "CRM"}

    from leadrelay.events import LEADS_FEEDBACK, DispositionRecorded, Envelope, TouchLogged

    events = [Envelope.from_record(rec).data for rec in h.bus.records(LEADS_FEEDBACK)]  # type: ignore[attr-defined]
    mine = [e for e in events if e.lead_id == lead]
    touches = [e for e in mine if isinstance(e, TouchLogged)]
    assert [(t.rep_id, t.actor and t.actor.id) for t in touches] == [
        ("astrid.lindqvist", "astrid.lindqvist"),
        ("astrid.lindqvist", "astrid.lindqvist"),
        ("astrid.lindqvist", "karin.ek"),
    ]
    dispositions = [e for e in mine if isinstance(e, DispositionRecorded)]
    assert [(d.rep_id, d.actor and (d.actor.kind, d.actor.id)) for d in dispositions] == [
        ("astrid.lindqvist", ("source", "crm"))
    ]


async def test_no_token_or_key_in_the_logs(world: World, caplog: pytest.LogCaptureFixture) -> None:
    import structlog

    h, lead = world.h, world.leads["A"]
    token = h.auth.issue("astrid.lindqvist")
    secrets_sent = [token, *(h.credential(s)["X-API-Key"] for s in ("website-tracking", "crm", "prometheus"))]
    expired = credentials(h, "expired")["Authorization"].removeprefix("Bearer ")
    forged = credentials(h, "forged")["Authorization"].removeprefix("Bearer ")
    secrets_sent += [expired, forged, SIGNING_KEY]
    caplog.set_level("DEBUG")
    with structlog.testing.capture_logs() as logs:
        client = h.as_(None)
        for headers in (
            bearer(token),
            bearer(expired),
            bearer(forged),
            {"X-API-Key": secrets_sent[1]},
            bearer(secrets_sent[2]),
            {"X-API-Key": "not-a-key-" + secrets_sent[3]},
        ):
            await client.get(f"/v1/leads/{lead}/score", headers=headers)
            await client.post(f"/v1/leads/{lead}/touches", json={"channel": "pigeon"}, headers=headers)
            await client.post("/v1/events", json={"type": "page_viewed", "lead_id": lead}, headers=headers)
            await client.get("/metrics", headers=headers)
        await h.settle()
    text = repr(logs) + caplog.text
    assert logs, "no log line captured: the test would prove nothing"
    assert any(e.get("event") == "unauthenticated" for e in logs)
    for secret in secrets_sent:
        for part in {secret, *secret.split(".")}:
            if len(part) >= 16:
                assert part not in text, "a credential (or part of one) was logged"
    assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}", text), "something token-shaped was logged"
