"""The console's pages over ASGI, mounted on the embedded services like `leadrelay run` does:
sign-in and its cookie, CSRF on every form, the security headers, what each person sees and may
do (the services decide), languages, and the live queue's first event. On SQLite: fast."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from console import live
from console.app import Console, Plugin
from leadrelay.auth import Authenticator
from leadrelay.bus.memory import MemoryBus
from leadrelay.clock import FrozenClock
from leadrelay.http import create_app
from leadrelay.rules import Rules, parse_rules
from leadrelay.runtime import Runtime, load_services
from sla_monitor.notify.notifier import Notifier
from tests.harness import EXAMPLE, SOURCE_KEYS, example_rules, settings_for

ASTRID_LEAD = {
    "email": "anna.berg@nordvik.se",
    "first_name": "Anna",
    "last_name": "Berg",
    "company": "Nordvik Logistics AB",
    "job_title": "Head of Operations",
    "country": "SE",
    "phone": "070-123 45 67",
}
JONAS_LEAD = {
    "email": "bernd.bauer@hanse-maschinen.de",
    "first_name": "Bernd",
    "company": "Hanse Maschinenbau GmbH",
    "country": "DE",
}


@dataclass
class Site:
    app: object
    console: Console
    auth: Authenticator
    transport: httpx.ASGITransport
    runtime: Runtime
    clock: FrozenClock

    def browser(self, origin: str = "http://127.0.0.1:8000", **headers: str) -> httpx.AsyncClient:
        """A client that keeps cookies (and sends Secure ones only over https), like a browser."""
        return httpx.AsyncClient(transport=self.transport, base_url=origin, headers=headers)

    def api(self, who: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.auth.issue(who)}"} if who else {}
        return httpx.AsyncClient(transport=self.transport, base_url="http://leadrelay", headers=headers)

    async def submit(self, form: str, fields: dict[str, str]) -> str:
        async with self.api() as c:
            r = await c.post(f"/v1/forms/{form}/submissions", json=fields)
        assert r.status_code == 202, r.text
        lead = str(r.json()["lead_id"])
        await self.runtime.wait_settled()
        return lead


@asynccontextmanager
async def serving(tmp_path: Path, rules: Rules) -> AsyncIterator[Site]:
    """The embedded services with the console, on ``rules``."""
    settings = settings_for(tmp_path)
    clock = FrozenClock()
    runtime = Runtime(load_services(), settings, rules, clock, MemoryBus())
    keys = {s.id: [SOURCE_KEYS[s.id]] for s in rules.sources}
    auth = Authenticator.from_settings(settings, rules, keys)
    app = create_app(runtime, "test", auth)
    console = Plugin.embedded(app, settings)
    await runtime.start()
    try:
        yield Site(
            app=app,
            console=console,
            auth=auth,
            transport=httpx.ASGITransport(app=app),
            runtime=runtime,
            clock=clock,
        )
    finally:
        await console.services.aclose()
        await runtime.stop()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with serving(tmp_path, example_rules()) as s:
        yield s


def csrf_of(html: str) -> str:
    m = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


async def sign_in(site: Site, person: str, client: httpx.AsyncClient | None = None) -> httpx.AsyncClient:
    browser = client or site.browser()
    page = await browser.get("/login")
    r = await browser.post("/login", data={"token": site.auth.issue(person), "csrf": csrf_of(page.text), "next": "/"})
    assert r.status_code == 303, r.text
    return browser


@asynccontextmanager
async def signed_in(site: Site, person: str) -> AsyncIterator[httpx.AsyncClient]:
    async with site.browser() as b:
        yield await sign_in(site, person, b)


async def test_sign_in_sets_a_safe_cookie_and_sign_out_clears_it(site: Site) -> None:
    async with site.browser() as b:
        r = await b.get("/")
        assert (r.status_code, r.headers["location"]) == (303, "/login?next=/")
        page = await b.get("/login")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        r = await b.post("/login", data={"token": site.auth.issue("astrid.lindqvist"), "csrf": csrf_of(page.text)})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].lower()
        assert cookie.startswith("lr_session=") and "httponly" in cookie and "samesite=lax" in cookie
        assert "secure" not in cookie, "plain http on one's own machine: no Secure, or the browser drops it"
        assert re.search(r"max-age=4(2|3)\d\d\d", cookie), cookie  # until the token expires (12 h)
        queue = await b.get("/")
        assert queue.status_code == 200 and "Your queue" in queue.text and "Astrid Lindqvist" in queue.text
        r = await b.post("/logout", data={"csrf": csrf_of(queue.text)})
        assert (r.status_code, r.headers["location"]) == (303, "/login?bye=1")
        assert 'lr_session=""' in r.headers["set-cookie"] and "max-age=0" in r.headers["set-cookie"].lower()
        assert (await b.get("/")).status_code == 303


async def test_the_session_cookie_is_secure_outside_localhost(site: Site) -> None:
    async with site.browser("https://console.example.com") as b:
        page = await b.get("/login")
        r = await b.post("/login", data={"token": site.auth.issue("karin.ek"), "csrf": csrf_of(page.text)})
        assert r.status_code == 303
        assert "secure" in r.headers["set-cookie"].lower()


async def test_a_sign_in_link_asks_before_signing_in(site: Site) -> None:
    async with site.browser() as b:
        page = await b.get("/login", params={"token": site.auth.issue("astrid.lindqvist")})
        assert page.status_code == 200
        assert "Sign in as Astrid Lindqvist (Rep)?" in page.text
        assert "lr_session" not in page.headers.get("set-cookie", ""), "a link alone must not sign anyone in"
        bad = await b.get("/login", params={"token": "eyJ.not.valid"})
        assert bad.status_code == 401 and "not accepted" in bad.text


async def test_a_bad_token_or_an_api_key_does_not_sign_in(site: Site) -> None:
    async with site.browser() as b:
        page = await b.get("/login")
        for token in ("nonsense", SOURCE_KEYS["crm"], ""):
            r = await b.post("/login", data={"token": token, "csrf": csrf_of(page.text)})
            assert r.status_code in (401, 422), (token[:5], r.status_code)
            assert "lr_session" not in r.headers.get("set-cookie", "")


async def test_every_form_needs_its_csrf_token(site: Site) -> None:
    lead = await site.submit("demo-request", ASTRID_LEAD)
    async with site.browser() as b:
        page = await b.get("/login")
        r = await b.post("/login", data={"token": site.auth.issue("astrid.lindqvist")})
        assert r.status_code == 403 and "lr_session" not in r.headers.get("set-cookie", "")
        r = await b.post("/login", data={"token": site.auth.issue("astrid.lindqvist"), "csrf": csrf_of(page.text)})
        assert r.status_code == 303
        own = csrf_of((await b.get("/")).text)
        async with site.browser() as other:
            await sign_in(site, "astrid.lindqvist", other)
            stolen = csrf_of((await other.get("/")).text)  # valid, but for another browser and session
        for token in (None, stolen, own[:-3] + "abc"):
            data = {"channel": "call", **({"csrf": token} if token else {})}
            r = await b.post(f"/leads/{lead}/touches", data=data)
            assert r.status_code == 403, r.text
            r = await b.post("/lang", data={"lang": "sv", **({"csrf": token} if token else {})})
            assert r.status_code == 403
        async with site.api("astrid.lindqvist") as api:
            assert (await api.get(f"/v1/leads/{lead}/feedback")).json()["touches"] == []
        # With it, and as htmx sends it (a header), it works.
        r = await b.post(
            f"/leads/{lead}/touches", data={"channel": "call"}, headers={"X-CSRF-Token": own, "HX-Request": "true"}
        )
        assert r.status_code == 200 and "Touch logged" in r.text


async def test_a_rep_works_a_lead(site: Site) -> None:
    lead = await site.submit("demo-request", ASTRID_LEAD)
    async with signed_in(site, "astrid.lindqvist") as b:
        queue = await b.get("/")
        assert "Anna Berg" in queue.text and "Nordvik Logistics AB" in queue.text and "Handraiser" in queue.text
        page = await b.get(f"/leads/{lead}")
        assert page.status_code == 200
        for text in (
            'href="tel:+46701234567"',
            'href="mailto:anna.berg@nordvik.se"',
            "decision-maker title",
            "Asked for sales: Book a demo",
            "Named account: Nordvik Logistics",
            'class="countdown"',
        ):
            assert text in page.text, text
        csrf = csrf_of(page.text)
        idem = re.search(r'name="idempotency" value="([^"]+)"', page.text)
        assert idem
        hx = {"HX-Request": "true"}
        r = await b.post(
            f"/leads/{lead}/touches",
            headers=hx,
            data={"csrf": csrf, "channel": "call", "note": "left a voicemail", "idempotency": idem[1]},
        )
        assert r.status_code == 200 and "Touch logged" in r.text
        # The first-touch clock shows as met at once; no countdown for it any more.
        assert re.search(r"First touch</span>\s*<span class=\"badge badge-clock-met\">met", r.text), r.text
        # A double click (same form) is recorded once.
        await b.post(
            f"/leads/{lead}/touches",
            headers=hx,
            data={"csrf": csrf, "channel": "call", "note": "left a voicemail", "idempotency": idem[1]},
        )
        r = await b.post(f"/leads/{lead}/dispositions", headers=hx, data={"csrf": csrf, "disposition": "junk"})
        assert "Give a reason to recycle or junk a lead." in r.text
        r = await b.post(
            f"/leads/{lead}/dispositions",
            headers=hx,
            data={"csrf": csrf, "disposition": "recycle", "reason": "no budget this year"},
        )
        assert "Status saved: recycled." in r.text
        # Handed back: the panel offers no more actions, at once.
        assert 'name="channel"' not in r.text and "No longer with sales: recycled." in r.text
    async with site.api("astrid.lindqvist") as api:
        fb = (await api.get(f"/v1/leads/{lead}/feedback")).json()
    assert [t["note"] for t in fb["touches"]] == ["left a voicemail"]
    assert [(d["disposition"], d["reason"]) for d in fb["dispositions"]] == [("recycle", "no budget this year")]
    await site.runtime.wait_settled()
    async with signed_in(site, "astrid.lindqvist") as b:
        assert "Anna Berg" not in (await b.get("/")).text, "a recycled lead leaves the queue"


async def test_a_notifications_link_opens_the_lead_after_sign_in(site: Site) -> None:
    lead = await site.submit("demo-request", ASTRID_LEAD)
    settings = site.runtime.settings.model_copy(update={"public_base_url": "http://127.0.0.1:8000"})
    link = httpx.URL(Notifier(example_rules(), settings).link(lead))
    async with site.browser() as b:
        r = await b.get(link.path)  # from the e-mail, not signed in yet: the sign-in page, then back here
        assert (r.status_code, r.headers["location"]) == (303, f"/login?next=/leads/{lead}")
        page = await b.get(r.headers["location"])
        r = await b.post(
            "/login",
            data={"token": site.auth.issue("astrid.lindqvist"), "csrf": csrf_of(page.text)}
            | {"next": f"/leads/{lead}"},
        )
        assert (r.status_code, r.headers["location"]) == (303, f"/leads/{lead}")
        page = await b.get(r.headers["location"])
        assert page.status_code == 200 and 'href="tel:+46701234567"' in page.text


async def test_a_plain_form_post_works_without_javascript(site: Site) -> None:
    lead = await site.submit("demo-request", ASTRID_LEAD)
    async with signed_in(site, "astrid.lindqvist") as b:
        csrf = csrf_of((await b.get(f"/leads/{lead}")).text)
        r = await b.post(f"/leads/{lead}/dispositions", data={"csrf": csrf, "disposition": "accepted"})
        assert (r.status_code, r.headers["location"]) == (303, f"/leads/{lead}?done=accepted")
        assert "Status saved: accepted." in (await b.get(r.headers["location"])).text


async def test_a_rep_cannot_open_another_reps_lead(site: Site) -> None:
    jonas = await site.submit("demo-request", JONAS_LEAD)
    async with signed_in(site, "astrid.lindqvist") as b:
        page = await b.get(f"/leads/{jonas}")
        assert page.status_code == 403 and "This lead is not one of yours." in page.text
        assert "Bernd" not in page.text and "Hanse" not in page.text
        r = await b.post(
            f"/leads/{jonas}/touches",
            headers={"HX-Request": "true"},
            data={"csrf": csrf_of(page.text), "channel": "call"},
        )
        assert r.status_code == 403 and "Bernd" not in r.text
        assert (await b.get("/leads/not-a-uuid")).status_code == 404
    async with site.api("jonas.becker") as api:
        assert (await api.get(f"/v1/leads/{jonas}/feedback")).json()["touches"] == []


async def test_languages(site: Site) -> None:
    async with site.browser(**{"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.5"}) as b:
        await sign_in(site, "astrid.lindqvist", b)
        page = await b.get("/")
        assert '<html lang="sv"' in page.text and "Din kö" in page.text
        r = await b.post("/lang", data={"lang": "zh", "next": "/alerts", "csrf": csrf_of(page.text)})
        assert (r.status_code, r.headers["location"]) == (303, "/alerts")
        assert "lr_lang=zh" in r.headers["set-cookie"]
        assert "SLA 警报" in (await b.get("/alerts")).text
        r = await b.post("/lang", data={"lang": "xx", "next": "https://evil.example/", "csrf": csrf_of(page.text)})
        assert r.headers["location"] == "/" and "lr_lang" not in r.headers.get("set-cookie", "")


async def test_a_manager_sets_availability_of_their_reps_only(site: Site) -> None:
    async with signed_in(site, "karin.ek") as b:
        team = await b.get("/team")
        assert team.status_code == 200 and "Mikko Virtanen" in team.text and "Jonas Becker" not in team.text
        assert 'action="/team/reps/mikko.virtanen/availability"' in team.text
        csrf = csrf_of(team.text)
        r = await b.post(
            "/team/reps/mikko.virtanen/availability", data={"csrf": csrf, "status": "out_of_office", "duration": "1d"}
        )
        assert r.status_code == 303
        assert "Mikko Virtanen: Out of office." in (await b.get(r.headers["location"])).text
        r = await b.post("/team/reps/jonas.becker/availability", data={"csrf": csrf, "status": "away"})
        assert r.status_code == 303
        assert "not in a territory you manage" in (await b.get(r.headers["location"])).text
    async with site.api("ops.desk") as api:
        reps = {r["id"]: r for t in (await api.get("/v1/territories")).json() for r in t["reps"]}
    assert (reps["mikko.virtanen"]["status"], reps["mikko.virtanen"]["set_by"]) == ("out_of_office", "karin.ek")
    assert reps["mikko.virtanen"]["until"] is not None
    assert reps["jonas.becker"]["status"] == "available"


@pytest.mark.parametrize("person", ["astrid.lindqvist", "karin.ek", "ops.desk", "rita.admin"])
async def test_every_page_renders_for_every_role(site: Site, person: str) -> None:
    lead = await site.submit("demo-request", ASTRID_LEAD)
    async with site.api("astrid.lindqvist") as api:
        r = await api.post(f"/v1/leads/{lead}/dispositions", json={"disposition": "junk", "reason": "a student"})
        assert r.status_code == 202
    await site.runtime.wait_settled()
    async with signed_in(site, person) as b:
        for path in (
            "/",
            "/alerts",
            "/team",
            "/funnel",
            "/funnel?period=all&territory=nordics",
            "/review",
            "/review?period=all",
            "/definition",
            "/hot",
            "/hot?status=junk",
            f"/leads/{lead}",
        ):
            r = await b.get(path)
            assert r.status_code == 200, f"{person} {path}: {r.status_code} {r.text[:300]}"
        definition = (await b.get("/definition")).text
        assert "decision-maker title" in definition and "Book a demo" in definition and "1 h" in definition
        # What to paste into the website, with the addresses the browser reaches (not the in-process ones).
        assert "data-leadrelay-form=&#34;demo-request&#34;" in definition and "integrity=&#34;sha384-" in definition
        assert "leadrelay.internal" not in definition and "/v1/track.js" in definition
        review = (await b.get("/review?period=all")).text
        assert "a student" in review and "Anna Berg" in review
        nav = (await b.get("/")).text
        assert ('href="/hot"' in nav) == (person in ("ops.desk", "rita.admin"))
        assert ('href="/team"' in nav) == (person != "astrid.lindqvist")


async def test_the_live_queue_sends_the_queue_and_then_only_changes(site: Site) -> None:
    token = site.auth.issue("astrid.lindqvist")
    site.console.poll_seconds = 0.05
    stream = live.queue(site.console, token, "en", {})
    first = await asyncio.wait_for(anext(stream), 5)
    assert first.startswith(b"event: queue\n") and b"Nothing here" in first
    assert await asyncio.wait_for(anext(stream), 5) == b"", "no change, nothing sent"
    await site.submit("demo-request", ASTRID_LEAD)
    for _ in range(50):
        chunk = await asyncio.wait_for(anext(stream), 5)
        if chunk:
            break
    assert chunk.startswith(b"event: queue\n") and b"Anna Berg" in chunk
    await stream.aclose()
    gone = live.queue(site.console, "not-a-token", "en", {})
    assert await anext(gone) == b"event: signout\ndata: \n\n"


@pytest.mark.parametrize("person", ["jonas.becker", "tom.weber"])
async def test_no_page_shows_another_persons_lead(site: Site, person: str) -> None:
    """Astrid's leads, one junked (the review board, the hot list) and one overdue (the alerts, the
    queue), on no page of another rep or of a manager of other territories: not their ids, names,
    addresses or companies; while each page does show the caller's own overdue lead."""
    junked = await site.submit("demo-request", ASTRID_LEAD)
    nils = {"email": "nils.nordin@nordvik.se", "first_name": "Nils", "last_name": "Nordin", "country": "SE"}
    overdue = await site.submit("contact-sales", nils)
    mine = await site.submit("demo-request", JONAS_LEAD)
    async with site.api("astrid.lindqvist") as api:
        r = await api.post(f"/v1/leads/{junked}/dispositions", json={"disposition": "junk", "reason": "a student"})
        assert r.status_code == 202
    site.clock.advance(timedelta(hours=2))  # the open leads' first touch is overdue: alerts
    await site.runtime.wait_settled()
    async with site.api("ops.desk") as api:
        for _ in range(200):
            alerted = {a["lead_id"] for a in (await api.get("/v1/alerts")).json()}
            if {overdue, mine} <= alerted:
                break
            await asyncio.sleep(0.05)
        assert {overdue, mine} <= alerted
    hidden = [junked, overdue, "Anna Berg", "Nils Nordin", "nordvik.se", "Nordvik Logistics AB", "a student"]
    async with signed_in(site, person) as b:
        for path in (
            "/",
            "/?sla=breached",
            "/alerts",
            "/team",
            "/funnel?period=all",
            "/review?period=all",
            "/hot",
            "/hot?status=junk",
            f"/leads/{mine}",
            f"/leads/{junked}",
            f"/leads/{overdue}",
        ):
            r = await b.get(path)
            want = 403 if path in (f"/leads/{junked}", f"/leads/{overdue}") else 200
            assert r.status_code == want, f"{person} {path}: {r.status_code}"
            # (A page refused shows the address asked for, with its id: nothing more.)
            shown = [x for x in hidden if x in r.text and x not in path]
            assert not shown, f"{person} {path} shows {shown}"
        for path in ("/", "/alerts", f"/leads/{mine}"):
            assert "Bernd" in (await b.get(path)).text, f"{person} {path} should show their own lead"


# People and territories named in other scripts than Latin, as a rules file may (it is UTF-8).
RENAMED = {
    "name: Karin Ek,": "name: 王秀英,",
    "name: Ops Desk,": "name: Ωψ Δεσκ,",
    "    name: Nordics\n": "    name: Северные страны · 北欧\n",
}


async def test_pages_name_people_and_territories_not_their_ids(tmp_path: Path) -> None:
    """Managers and who set a rep's availability on the Team page, who logged a touch (a manager,
    ops) on a lead's page, and the territory on a lead's page and in the alert feed (as it opens and live) are shown
    by their names from the rules, in whatever script, not by their ids."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in RENAMED.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    rules = parse_rules(yaml.safe_load(text))
    nordics = "Северные страны · 北欧"
    async with serving(tmp_path, rules) as site:
        lead = await site.submit("demo-request", ASTRID_LEAD)
        async with site.api("karin.ek") as api:
            r = await api.post(f"/v1/leads/{lead}/touches", json={"channel": "call", "rep_id": "astrid.lindqvist"})
            assert r.status_code == 202, r.text
            r = await api.put("/v1/reps/mikko.virtanen/availability", json={"status": "away"})
            assert r.status_code == 200 and r.json()["set_by_name"] == "王秀英", r.text
        async with site.api("ops.desk") as api:
            r = await api.put("/v1/reps/jonas.becker/availability", json={"status": "out_of_office"})
            assert r.status_code == 200, r.text
            r = await api.post(f"/v1/leads/{lead}/touches", json={"channel": "email", "rep_id": "astrid.lindqvist"})
            assert r.status_code == 202, r.text
            await site.runtime.wait_settled()
            touches = (await api.get(f"/v1/leads/{lead}/feedback")).json()["touches"]
            assert {t["logged_by"]["id"]: t["logged_by"]["name"] for t in touches} == {
                "karin.ek": "王秀英",
                "ops.desk": "Ωψ Δεσκ",
            }
        site.clock.advance(timedelta(days=3))  # the disposition deadline (2 days) passes: an alert
        await site.runtime.wait_settled()
        async with site.api("ops.desk") as api:
            for _ in range(200):
                if lead in {a["lead_id"] for a in (await api.get("/v1/alerts")).json()}:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("no alert")
        async with signed_in(site, "ops.desk") as b:
            team = (await b.get("/team")).text
            assert "Managers: 王秀英</p>" in team and "Managers: Tom Weber</p>" in team
            assert "set by 王秀英" in team and "set by Ωψ Δεσκ" in team
            assert "karin.ek" not in team and "ops.desk" not in team
            for path in (f"/leads/{lead}", "/alerts"):
                page = (await b.get(path)).text
                assert f"Territory: {nordics}" in page and "Territory: nordics" not in page, path
        async with signed_in(site, "astrid.lindqvist") as b:
            page = (await b.get(f"/leads/{lead}")).text
            assert "logged by 王秀英" in page and "logged by Ωψ Δεσκ" in page
            assert "karin.ek" not in page and "ops.desk" not in page
            assert f"Territory: {nordics}" in page
        site.console.poll_seconds = 0.05
        stream = live.alerts(site.console, site.auth.issue("karin.ek"), "en", "")
        first = (await asyncio.wait_for(anext(stream), 5)).decode()
        await stream.aclose()
        assert first.startswith("event: alerts\n") and f"Territory: {nordics}" in first, first
