"""The console in a real browser: Debian's Chromium, driven by pytest-playwright.

Once embedded (`leadrelay run` as a process on a free port) and once distributed (each service
and the console its own `leadrelay serve` process, on the real Kafka and PostgreSQL):

- a rep signs in with the link `make run` prints, a form is posted, the lead appears in the queue
  without a reload within two seconds of the queue having it, the rep opens it, logs a touch (the
  countdown stops at once) and sets a status with its reason; the lead page works at phone width;
- a rep cannot open another rep's lead;
- ops sees an SLA breach appear without a reload and sets a rep out of office;
- the language follows the browser and the switch shows Swedish and Chinese, times in the
  viewer's time zone, names in Chinese as written;
- axe-core finds no serious or critical violation on any page, and no page breaks its Content
  Security Policy.

Screenshots of every page go to .run/console-screenshots/<mode>/ (git-ignored); the best are
copied into docs/ by hand. Never `playwright install`: the browser is Debian's (deploy/chromium.sh).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from leadrelay.events import all_topics
from tests.e2e.distributed import CONSOLE, Cluster, cluster, free_port
from tests.harness import EXAMPLE, SIGNING_KEY, source_env, token_for

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = REPO / "tests" / "e2e" / "vendor" / "axe-core" / "axe.min.js"
SHOTS = REPO / ".run" / "console-screenshots"
REQUIRE = os.environ.get("LEADRELAY_REQUIRE_INFRA") == "1"
LIVE_WITHIN_SECONDS = 2.0


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch options (--headed, --slowmo…) with Debian's Chromium, never a
    downloaded one."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: run deploy/chromium.sh install (make test does)"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="module")
def browser(browser_type_launch_args: dict[str, Any]) -> Iterator[Browser]:
    """For this module only, instead of pytest-playwright's session-wide browser: while Playwright's
    sync API lives, its event loop counts as running in this thread, and the asyncio tests of the
    other modules would fail after this one."""
    with sync_playwright() as pw:
        launched = pw.chromium.launch(**browser_type_launch_args)
        yield launched
        launched.close()


def fast_rules(tmp: Path) -> Path:
    """The example rules with an MQL's first touch due in 4 s (ops watches it breach); a
    handraiser's stays at an hour (the rep's countdown keeps running while they work)."""
    rules = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    rules["sla"] = {
        "handraiser": {"first_touch": "1h", "disposition": "2d"},
        "mql": {"first_touch": "4s", "disposition": "1h"},
    }
    path = tmp / "rules.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Site:
    mode: str
    console: str  # the console's base URL
    services: dict[str, str]  # each service's base URL
    shots: Path
    logs: list[Path] = field(default_factory=list)

    def link(self, person: str) -> str:
        """The sign-in link `make run` prints for a person."""
        return f"{self.console}/login?token={token_for(person)}"

    def api(self, service: str, path: str, person: str = "rita.admin") -> Any:
        r = httpx.get(
            self.services[service] + path, headers={"Authorization": f"Bearer {token_for(person)}"}, timeout=10
        )
        assert r.status_code == 200, f"{service} GET {path}: {r.status_code} {r.text}"
        return r.json()

    def submit(self, form: str, **fields: str) -> str:
        r = httpx.post(f"{self.services['intake']}/v1/forms/{form}/submissions", json=fields, timeout=30)
        assert r.status_code == 202, r.text
        return str(r.json()["lead_id"])

    def wait_api(self, service: str, path: str, person: str, found: Any, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            r = httpx.get(
                self.services[service] + path, headers={"Authorization": f"Bearer {token_for(person)}"}, timeout=10
            )
            if r.status_code == 200 and found(r.json()):
                return r.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"{service} GET {path} as {person}: {r.status_code} {r.text[:500]}\n{self.tail()}")
            time.sleep(0.05)

    def tail(self) -> str:
        out = []
        for path in self.logs:
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-15:]
                out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"leadrelay run exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"leadrelay run not ready in {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("embedded")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADRELAY_")}
    env.update(
        LEADRELAY_DATA_DIR=str(tmp / "data"),
        LEADRELAY_CONFIG=str(fast_rules(tmp)),
        LEADRELAY_AUTH_SIGNING_KEY=SIGNING_KEY,
        LEADRELAY_SLA_TICK_SECONDS="0.2",
        **source_env(),
    )
    log = tmp / "leadrelay-run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "leadrelay.cli", "run", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield Site(
            "embedded",
            url,
            dict.fromkeys(("intake", "scoring", "routing", "sla-monitor", "feedback"), url),
            SHOTS / "embedded",
            [log],
        )
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_async(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """asyncio.run in a thread of its own: Playwright's sync API keeps a loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


async def _drop_schemas(pg_url: str, prefix: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for row in await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", prefix + "_%"):
            await conn.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def distributed(tmp_path_factory: pytest.TempPathFactory, pg_url: str, kafka_bootstrap: str) -> Iterator[Site]:
    from leadrelay.bus.kafka import create_topics

    kafka = kafka_bootstrap
    tmp = tmp_path_factory.mktemp("distributed")
    prefix = "t" + uuid.uuid4().hex[:10]
    run_async(lambda: create_topics(kafka, all_topics(), prefix=f"{prefix}."))
    services = ("intake", "scoring", "routing", "sla-monitor", "feedback", CONSOLE)
    try:
        with cluster(tmp, pg_url, kafka, prefix, fast_rules(tmp), services=services) as c:
            yield _distributed_site(c)
    finally:
        run_async(lambda: _drop_schemas(pg_url, prefix))


def _distributed_site(c: Cluster) -> Site:
    urls = {s: c.url(s) for s in c.ports if s != CONSOLE}
    return Site("distributed", c.url(CONSOLE), urls, SHOTS / "distributed", [c.logs / f"{s}.log" for s in c.ports])


@pytest.fixture(
    scope="module",
    params=["embedded", pytest.param("distributed", marks=[pytest.mark.kafka, pytest.mark.postgres])],
)
def site(request: pytest.FixtureRequest) -> Site:
    s: Site = request.getfixturevalue(request.param)
    s.shots.mkdir(parents=True, exist_ok=True)
    return s


# ---------------------------------------------------------------- browser helpers


@dataclass
class Tab:
    page: Page
    context: BrowserContext
    site: Site
    csp_errors: list[str] = field(default_factory=list)
    js_errors: list[str] = field(default_factory=list)

    def shot(self, name: str, full_page: bool = True) -> None:
        # caret="initial": hiding the caret would inject a style, which the CSP (rightly) refuses.
        self.page.screenshot(path=str(self.site.shots / f"{name}.png"), full_page=full_page, caret="initial")

    def check_clean(self) -> None:
        assert not self.csp_errors, f"Content Security Policy violations: {self.csp_errors}"
        assert not self.js_errors, f"JavaScript errors: {self.js_errors}"


def open_tab(browser: Browser, site: Site, **context: Any) -> Tab:
    options: dict[str, Any] = {"viewport": {"width": 1280, "height": 860}, "locale": "en-GB"} | context
    ctx = browser.new_context(**options)
    ctx.set_default_timeout(15_000)
    page = ctx.new_page()
    tab = Tab(page, ctx, site)
    page.on(
        "console",
        lambda m: tab.csp_errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda e: tab.js_errors.append(str(e)))
    return tab


def sign_in(tab: Tab, person: str, name: str, continue_label: str = "Continue as") -> None:
    tab.page.goto(tab.site.link(person))
    tab.page.get_by_role("button", name=re.compile(re.escape(continue_label) + ".*" + re.escape(name))).click()
    expect(tab.page.locator("header .person")).to_contain_text(name)


def wait_live(tab: Tab) -> None:
    expect(tab.page.locator("#live-status")).to_be_visible()
    expect(tab.page.locator("#live-status")).not_to_have_class(re.compile(r"\boff\b"))


def axe_violations(page: Page) -> list[str]:
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {v['nodes']}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def unique(local: str) -> str:
    return f"{local}.{uuid.uuid4().hex[:6]}"


# ---------------------------------------------------------------- scenarios


def test_a_rep_works_a_new_lead_live(site: Site, browser: Browser) -> None:
    tab = open_tab(browser, site, timezone_id="Europe/Stockholm")
    page = tab.page
    sign_in(tab, "astrid.lindqvist", "Astrid Lindqvist")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your queue")
    wait_live(tab)

    email = unique("anna.berg") + "@nordvik.se"  # Nordvik Logistics: Astrid's named account
    posted = time.monotonic()
    lead = site.submit(
        "demo-request",
        email=email,
        first_name="Anna",
        last_name="Berg",
        company="Nordvik Logistics AB",
        job_title="Head of Operations",
        country="SE",
        phone="070-123 45 67",
        company_size="250",
    )
    site.wait_api("sla-monitor", "/v1/me/leads", "astrid.lindqvist", lambda q: any(i["lead_id"] == lead for i in q))
    in_queue = time.monotonic()
    card = page.locator(f'li.lead-card[data-lead="{lead}"]')
    expect(card).to_be_visible(timeout=LIVE_WITHIN_SECONDS * 1000)
    shown = time.monotonic()
    print(f"[{site.mode}] form to queue API {in_queue - posted:.2f}s, to the browser {shown - posted:.2f}s")
    assert shown - in_queue <= LIVE_WITHIN_SECONDS + 0.5
    expect(card).to_contain_text("Anna Berg")
    expect(card.locator("time.countdown")).to_have_text(re.compile(r"^\d+:\d\d left$"))
    tab.shot("queue")

    card.get_by_role("link", name="Anna Berg").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Anna Berg")
    expect(page.locator('a[href="tel:+46701234567"]')).to_be_visible()
    expect(page.locator(f'a[href="mailto:{email}"]')).to_be_visible()
    expect(page.locator("table.reasons")).to_contain_text("decision-maker title")
    expect(page.get_by_text("Asked for sales: Book a demo")).to_be_visible()
    expect(page.get_by_text("Named account: Nordvik Logistics")).to_be_visible()
    expect(page.locator(".timeline")).to_contain_text("Submitted a form")
    first_touch = page.locator(".clock", has_text="First touch")
    expect(first_touch.locator("time.countdown")).to_have_text(re.compile(r"left$"))
    tab.shot("lead")

    # Two clicks at most: log a call; then a status (with the reason the rules require).
    page.get_by_label("Note (optional)").fill("Left a voicemail")
    clicked = time.monotonic()
    page.get_by_role("button", name="Called").click()
    expect(page.locator("#work .notice")).to_have_text("Touch logged: the first-touch clock has stopped.")
    expect(first_touch.locator(".badge-clock-met")).to_be_visible()
    expect(first_touch.locator("time.countdown")).to_have_count(0)
    assert time.monotonic() - clicked < 5, "the countdown must stop at once, without a reload"
    expect(page.locator(".timeline")).to_contain_text("Called by Astrid Lindqvist")

    page.get_by_role("button", name="Recycle").click()
    expect(page.locator("#work .problem")).to_have_text("Give a reason to recycle or junk a lead.")
    expect(page.locator("#work .problem")).to_be_focused()
    page.get_by_label("Reason (required for recycle and junk)").fill("No budget until next year")
    page.get_by_role("button", name="Recycle").click()
    expect(page.locator("#work .notice")).to_have_text("Status saved: recycled.")
    expect(page.get_by_role("button", name="Called")).to_have_count(0)  # handed back: nothing more to do
    expect(page.locator(".timeline")).to_contain_text("No budget until next year")
    tab.shot("lead-done")
    feedback = site.api("feedback", f"/v1/leads/{lead}/feedback", "astrid.lindqvist")
    assert [(t["channel"], t["note"]) for t in feedback["touches"]] == [("call", "Left a voicemail")]
    assert [(d["disposition"], d["reason"]) for d in feedback["dispositions"]] == [
        ("recycle", "No budget until next year")
    ]

    # A recycled lead leaves the queue (live, as the SLA monitor hears of it).
    page.get_by_role("link", name="Queue").click()
    expect(page.locator(f'li.lead-card[data-lead="{lead}"]')).to_have_count(0)

    # On a phone: the queue and a lead page fit the screen, the buttons are there.
    other = site.submit(
        "contact-sales",
        email=unique("erik.holm") + "@nordvik.se",
        first_name="Erik",
        last_name="Holm",
        company="Nordvik Logistics AB",
        country="SE",
        phone="+46 8 123 456",
    )
    site.wait_api("sla-monitor", "/v1/me/leads", "astrid.lindqvist", lambda q: any(i["lead_id"] == other for i in q))
    phone = open_tab(
        browser,
        site,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        storage_state=tab.context.storage_state(),
    )
    phone.page.goto(site.console + "/")
    expect(phone.page.locator(f'li.lead-card[data-lead="{other}"]')).to_be_visible()
    phone.shot("phone-queue", full_page=False)
    phone.page.goto(f"{site.console}/leads/{other}")
    expect(phone.page.get_by_role("button", name="Called")).to_be_visible()
    overflow = phone.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the lead page is {overflow}px wider than a phone"
    phone.shot("phone-lead")
    phone.check_clean()
    tab.check_clean()
    phone.context.close()
    tab.context.close()


def test_a_rep_cannot_open_another_reps_lead(site: Site, browser: Browser) -> None:
    lead = site.submit(
        "demo-request",
        email=unique("bernd.bauer") + "@hanse-maschinen.de",
        first_name="Bernd",
        last_name="Bauer",
        company="Hanse Maschinenbau GmbH",
        country="DE",
    )
    site.wait_api("routing", f"/v1/leads/{lead}/assignment", "jonas.becker", lambda a: a["rep_id"] == "jonas.becker")
    tab = open_tab(browser, site)
    sign_in(tab, "astrid.lindqvist", "Astrid Lindqvist")
    response = tab.page.goto(f"{site.console}/leads/{lead}")
    assert response is not None and response.status == 403
    expect(tab.page.get_by_role("alert")).to_have_text("This lead is not one of yours.")
    expect(tab.page.locator("main")).not_to_contain_text("Bernd")
    expect(tab.page.locator("main")).not_to_contain_text("Hanse")
    tab.shot("not-yours")
    tab.check_clean()
    tab.context.close()


def test_ops_sees_a_breach_live_and_sets_a_rep_out_of_office(site: Site, browser: Browser) -> None:
    tab = open_tab(browser, site)
    page = tab.page
    sign_in(tab, "ops.desk", "Ops Desk")
    page.get_by_role("link", name="Alerts").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("SLA alerts")
    wait_live(tab)
    page.evaluate("window.__sameDocument = true")

    # An MQL (fit 60 + 5 for the form): its first touch is due in 4 s, and nobody calls.
    lead = site.submit(
        "whitepaper",
        email=unique("liisa.korhonen") + "@korhonen-test.fi",
        first_name="Liisa",
        last_name="Korhonen",
        company="Korhonen Software Oy",
        job_title="Head of IT",
        country="FI",
        company_size="300",
        industry="software",
        phone="+358 9 1234 567",
    )
    item = page.locator(f'li.alert-item[data-lead="{lead}"]')
    expect(item).to_be_visible(timeout=25_000)
    expect(item).to_contain_text("First touch deadline missed")
    expect(item).to_contain_text("Liisa Korhonen")
    expect(item).to_contain_text("Territory: Nordics")  # by name, not its id
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    tab.shot("alerts")

    page.get_by_role("link", name="Team").click()
    row = page.locator("tr#rep-mikko\\.virtanen")
    row.get_by_label("Availability").select_option("out_of_office")
    row.get_by_label("For").select_option("1d")
    row.get_by_role("button", name="Save: Mikko Virtanen").click()
    expect(page.get_by_role("status")).to_have_text("Mikko Virtanen: Out of office.")
    expect(page.locator("tr#rep-mikko\\.virtanen .badge")).to_have_text("Out of office")
    expect(page.locator("tr#rep-mikko\\.virtanen")).to_contain_text("set by Ops Desk")
    expect(page.locator("p.subtitle", has_text="Managers: Karin Ek")).to_have_count(2)  # Nordics, Benelux
    tab.shot("team")
    reps = {r["id"]: r for t in site.api("routing", "/v1/territories", "ops.desk") for r in t["reps"]}
    assert (reps["mikko.virtanen"]["status"], reps["mikko.virtanen"]["set_by"]) == ("out_of_office", "ops.desk")

    for path, name in (("/funnel", "funnel"), ("/review?period=all", "review"), ("/", "queue-ops")):
        page.goto(site.console + path)
        tab.shot(name)
    expect(page.locator(".lead-card").first).to_be_visible()
    tab.check_clean()
    tab.context.close()


def test_the_language_follows_the_browser_and_the_switch(site: Site, browser: Browser) -> None:
    lead = site.submit(
        "demo-request",
        email=unique("li.na") + "@huaxin-test.cn",
        first_name="娜",
        last_name="李",
        company="华信科技有限公司",
        job_title="技术总监",
        country="CN",
        phone="+86 10 6552 8888",
    )
    assignment = site.wait_api("routing", f"/v1/leads/{lead}/assignment", "rita.admin", lambda a: True)
    rep = assignment["rep_id"]
    name = {"wang.fang": "Wang Fang", "chen.wei": "Chen Wei"}[rep]
    tab = open_tab(browser, site, locale="sv-SE", timezone_id="Asia/Shanghai")
    page = tab.page
    sign_in(tab, rep, name, continue_label="Fortsätt som")
    expect(page.get_by_role("heading", level=1)).to_have_text("Din kö")
    expect(page.locator("html")).to_have_attribute("lang", "sv")
    tab.shot("queue-sv")

    page.get_by_role("button", name="中文").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("我的队列")
    expect(page.locator("html")).to_have_attribute("lang", "zh")
    expect(page.locator(f'li.lead-card[data-lead="{lead}"]')).to_contain_text("李娜")
    expect(page.locator(f'li.lead-card[data-lead="{lead}"]')).to_contain_text("华信科技有限公司")
    tab.shot("queue-zh")

    page.goto(f"{site.console}/leads/{lead}")
    expect(page.get_by_role("heading", level=1)).to_have_text("李娜")
    expect(page.get_by_role("button", name="已致电")).to_be_visible()
    # Times in the viewer's time zone (Shanghai), written the Chinese way.
    stamp = page.locator(".lead-head time.ts")
    expect(stamp).not_to_contain_text("UTC")
    when = datetime.fromisoformat(assignment["assigned_at"].replace("Z", "+00:00")).astimezone(
        ZoneInfo("Asia/Shanghai")
    )
    expect(stamp).to_contain_text(f"{when.hour:02d}:{when.minute:02d}")
    expect(stamp).to_contain_text("年")
    tab.shot("lead-zh")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=2).first).to_have_text("Follow up")
    tab.check_clean()
    tab.context.close()


def test_axe_finds_no_serious_violation(site: Site, browser: Browser) -> None:
    lead = site.submit(
        "demo-request",
        email=unique("zoe.vermeulen") + "@vermeulen-test.nl",
        first_name="Zoë",
        last_name="Vermeulen",
        company="Vermeulen & Zonen B.V.",
        job_title="Directeur",
        country="NL",
    )
    site.wait_api("routing", f"/v1/leads/{lead}/assignment", "rita.admin", lambda a: True)
    tab = open_tab(browser, site)
    page = tab.page
    problems: dict[str, list[str]] = {}
    page.goto(site.console + "/login")
    problems["/login"] = axe_violations(page)
    tab.shot("login")
    sign_in(tab, "rita.admin", "Rita Alvarez")
    for path, name in (
        ("/", "queue-admin"),
        (f"/leads/{lead}", "lead-admin"),
        ("/alerts", "alerts-admin"),
        ("/team", "team-admin"),
        ("/funnel", "funnel-admin"),
        ("/review?period=all", "review-admin"),
        ("/definition", "definition"),
        ("/hot", "hot"),
    ):
        page.goto(site.console + path)
        problems[path] = axe_violations(page)
        tab.shot(name)
    found = {p: v for p, v in problems.items() if v}
    assert not found, f"axe found serious or critical violations: {found}"
    # Every action is reachable by keyboard: tabbing from the top reaches the touch buttons.
    page.goto(f"{site.console}/leads/{lead}")
    reached = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement && document.activeElement.textContent.trim()"))
    assert {"Called", "Accept", "Sign out"} <= reached, reached
    tab.check_clean()
    tab.context.close()
