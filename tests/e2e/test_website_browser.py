"""A form on a company's website, in a real browser (Debian's Chromium, pytest-playwright).

The company's pages are served by a second local HTTP server (another origin than intake's); they
paste what intake hands out (``GET /v1/forms/{id}/embed``: the plain form with the embed script,
pinned by its integrity hash) and the tracking line. Once embedded (``leadrelay run``) and once
distributed (``leadrelay serve`` per service, on the real Kafka and PostgreSQL):

- in Swedish (the page's ``<html lang>``) and Chinese (the browser's language): page views are
  sent as Segment page calls with a first-party anonymous id; the form shows its fields, labels
  and consent text in the language; the browser's own check refuses a bad address, the server's
  error appears next to its field, a double click posts once, and the visitor sees the thank-you
  inline; the post carries the anonymous id, and the lead is scored;
- once intake has the tracking endpoints and the anonymous-to-known join, the earlier page views
  count in the lead's score (skipped, saying so, while intake has no ``/v1/p``);
- with scripts disabled, the plain form posts and lands on the thank-you page, or with errors on
  the error page, where the script (once it runs) shows them next to their fields;
- with Global Privacy Control nothing is tracked; without it, page views and named events are;
  where the rules require consent, nothing (not even an id) before it, then what waited;
- a page on an origin the rules do not allow cannot post (no CORS, 403) and the visitor is told.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page, Request, expect

from intake.forms.website import embed_script, track_script
from leadrelay.events import all_topics
from leadrelay.rules import Captcha, FieldType, FormField
from leadrelay.rules import Form as RulesForm
from leadrelay.rules import Website as RulesWebsite
from tests.e2e import test_console_browser as console_e2e
from tests.e2e.distributed import cluster, free_port
from tests.e2e.test_console_browser import _drop_schemas, _wait_ready, run_async
from tests.harness import EXAMPLE, SIGNING_KEY, SOURCE_KEYS, source_env, token_for

pytestmark = [pytest.mark.slow]

# Debian's Chromium, launched as the console's browser tests launch it.
browser_type_launch_args = console_e2e.browser_type_launch_args
browser = console_e2e.browser

SHOTS = Path(__file__).resolve().parents[2] / ".run" / "website-screenshots"

WRITE_KEY = SOURCE_KEYS.get("website", SOURCE_KEYS["website-tracking"])
SWEDISH = {
    "email": "E-post (jobb)",
    "consent": "Jag godkänner",
    "thanks": "Tack! Vi hör av oss snart.",
    "email_error": "Ange en giltig e-postadress.",
    "consent_error": "Kryssa i rutan för att fortsätta.",
    "phone_error": "Ange ett giltigt telefonnummer, t.ex. +46 70 123 45 67.",
}
CHINESE = {
    "email": "工作邮箱",
    "consent": "我同意",
    "thanks": "谢谢！我们会尽快与您联系。",
    "email_error": "请输入有效的电子邮件地址。",
    "consent_error": "请勾选此框以继续。",
    "phone_error": "请输入有效的电话号码，例如 +86 138 0013 8000。",
}


# A form with a Turnstile captcha, and a stand-in for Cloudflare's api.js (no request leaves the
# machine): render() puts the widget's hidden token field into the element, solve() fills it in,
# reset() clears it, as the real widget does.
CAPTCHA_FORM = RulesForm(
    id="newsletter",
    name="Newsletter",
    fields=[
        FormField(name="email", type=FieldType.EMAIL, required=True),
        FormField(name="company_size"),
        FormField(name="website"),
    ],
    captcha=Captcha(
        kind="turnstile",
        site_key="0x4AAAA-site",
        secret_env="LEADRELAY_TEST_TURNSTILE_SECRET",  # noqa: S106 - the variable's name, not a secret
    ),
)
FAKE_TURNSTILE = """
window.rendered = []; window.resets = 0; var solved = 0;
window.turnstile = {
  render: function (el, opts) {
    var i = document.createElement('input'); i.type = 'hidden'; i.name = 'cf-turnstile-response';
    el.appendChild(i); window.rendered.push(opts.sitekey); return 'widget-1';
  },
  reset: function (el) { el.querySelector('input').value = ''; window.resets++; }
};
window.solve = function () {
  solved++; document.querySelector('[name=cf-turnstile-response]').value = 'token-' + solved;
};
"""


# ---------------------------------------------------------------- the company's website


@dataclass
class Website:
    """A second HTTP server: the company's pages, on their own origin."""

    port: int
    intake: str = ""
    embed: dict[str, Any] = field(default_factory=dict)
    posts: list[tuple[str, str]] = field(default_factory=list)  # what pages posted to the site itself

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def other_origin(self) -> str:
        """The same pages on an origin the rules do not allow."""
        return f"http://localhost:{self.port}"

    def page(self, path: str) -> str:
        lang, _, name = path.strip("/").partition("/")
        if lang == "captcha":  # a form with a captcha, its embed.js served from here (so it posts here)
            return (
                f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{name}</title>"
                f"<script>{FAKE_TURNSTILE}</script><script src=/embed-captcha.js async></script></head>"
                f'<body><div data-leadrelay-form="{name}"></div></body></html>'
            )
        lang_attr = "" if lang == "auto" else f' lang="{lang}"'
        tracking = self.embed["tracking_html"].replace("YOUR_WRITE_KEY", WRITE_KEY)
        if lang == "consent":  # the tracking script as a site needing consent gets it, served from here
            tracking = f'<script src="/track-consent.js" data-write-key="{WRITE_KEY}" async></script>'
        if name == "thanks" or lang == "thanks":
            body = "<h1>Thank you page</h1>"
        elif name == "demo":
            body = f"<h1>Book a demo</h1>\n{self.embed['html']}"
        else:
            body = f"<h1>{name.capitalize()}</h1><p>Our {name}.</p>"
        return (
            f"<!doctype html><html{lang_attr}><head><meta charset=utf-8><title>{name or 'Home'}</title>"
            f"{tracking}</head><body>{body}</body></html>"
        )


@pytest.fixture(scope="module")
def website() -> Iterator[Website]:
    site = Website(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            path = self.path.split("?")[0]
            if path == "/track-consent.js":
                body, kind = track_script(RulesWebsite(require_consent=True)).body, "text/javascript"
            elif path == "/embed-captcha.js":
                body, kind = embed_script(CAPTCHA_FORM).body, "text/javascript"
            else:
                body, kind = site.page(path).encode(), "text/html; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - the consent page's tracking calls land here, and the captcha form
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            site.posts.append((self.path, data))
            if not self.path.endswith("/submissions"):
                self.send_response(204)
                self.end_headers()
                return
            # As intake answers: the first token is refused by the verifier, the next one passes.
            token = parse_qs(data).get("cf-turnstile-response", [""])[0]
            if token.endswith("-1"):
                status, answer = 422, {"detail": [{"loc": ["body", "cf-turnstile-response"], "msg": "refused"}]}
            else:
                status, answer = 202, {"lead_id": str(uuid.uuid4()), "event_id": str(uuid.uuid4())}
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", site.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


def website_rules(tmp: Path, origin: str) -> Path:
    """The example rules with the test site's origin allowed, its thank-you page, a required consent."""
    rules = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for form in rules["forms"]:
        if form["id"] == "demo-request":
            form["origins"] = [origin]
            form["thank_you_url"] = f"{origin}/en/thanks"
            form["error_url"] = f"{origin}/sv/demo"
            form["consent"]["required"] = True
    for source in rules["sources"]:
        source["origins"] = [origin]
    path = tmp / "rules.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Stack:
    mode: str
    intake: str
    scoring: str

    def score(self, lead_id: str, found: Any, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            r = httpx.get(
                f"{self.scoring}/v1/leads/{lead_id}/score",
                headers={"Authorization": f"Bearer {token_for('rita.admin')}"},
                timeout=10,
            )
            if r.status_code == 200 and found(r.json()):
                return r.json()  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise AssertionError(f"score of {lead_id}: {r.status_code} {r.text[:500]}")
            time.sleep(0.1)

    def consent(self, lead_id: str) -> list[dict[str, Any]]:
        r = httpx.get(
            f"{self.scoring}/v1/leads/{lead_id}/consent",
            headers={"Authorization": f"Bearer {token_for('rita.admin')}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def has_tracking_endpoints(self) -> bool:
        paths = httpx.get(f"{self.intake}/openapi.json", timeout=10).json()["paths"]
        return "/v1/p" in paths or "/v1/page" in paths


def write_key_env(with_sources: bool = True) -> dict[str, str]:
    """The sources' keys, and the website source's write key (LEADRELAY_WRITE_KEY_WEBSITE) when the
    rules do not define that source yet."""
    sources = source_env()
    extra = {} if "LEADRELAY_WRITE_KEY_WEBSITE" in sources else {"LEADRELAY_WRITE_KEY_WEBSITE": WRITE_KEY}
    return {**sources, **extra} if with_sources else extra


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, website: Website) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("website-embedded")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADRELAY_")}
    env.update(
        LEADRELAY_DATA_DIR=str(tmp / "data"),
        LEADRELAY_CONFIG=str(website_rules(tmp, website.origin)),
        LEADRELAY_AUTH_SIGNING_KEY=SIGNING_KEY,
        **write_key_env(),
    )
    log = tmp / "leadrelay-run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "leadrelay.cli", "run", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield Stack("embedded", url, url)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def distributed(
    tmp_path_factory: pytest.TempPathFactory, website: Website, pg_url: str, kafka_bootstrap: str
) -> Iterator[Stack]:
    from leadrelay.bus.kafka import create_topics

    kafka = kafka_bootstrap
    tmp = tmp_path_factory.mktemp("website-distributed")
    prefix = "t" + uuid.uuid4().hex[:10]
    run_async(lambda: create_topics(kafka, all_topics(), prefix=f"{prefix}."))
    rules = website_rules(tmp, website.origin)
    try:
        with cluster(
            tmp, pg_url, kafka, prefix, rules, services=("intake", "scoring"), **write_key_env(with_sources=False)
        ) as c:
            yield Stack("distributed", c.url("intake"), c.url("scoring"))
    finally:
        run_async(lambda: _drop_schemas(pg_url, prefix))


@pytest.fixture(
    scope="module",
    params=["embedded", pytest.param("distributed", marks=[pytest.mark.kafka, pytest.mark.postgres])],
)
def stack(request: pytest.FixtureRequest, website: Website) -> Stack:
    s: Stack = request.getfixturevalue(request.param)
    website.intake = s.intake
    website.embed = httpx.get(f"{s.intake}/v1/forms/demo-request/embed", timeout=10).json()
    return s


# ---------------------------------------------------------------- the visitor


@dataclass
class Visit:
    page: Page
    sent: list[Request] = field(default_factory=list)  # what the page sent to intake
    errors: list[str] = field(default_factory=list)

    def posts(self, path_end: str) -> list[Request]:
        return [r for r in self.sent if r.method == "POST" and r.url.endswith(path_end)]


def shot(page: Page, stack: Stack, name: str) -> None:
    """A screenshot for people to look at (git-ignored)."""
    (SHOTS / stack.mode).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / stack.mode / f"{name}.png"), full_page=True)


def visit(browser: Browser, stack: Stack, **context: Any) -> Visit:
    ctx = browser.new_context(**({"viewport": {"width": 1000, "height": 900}} | context))
    page = ctx.new_page()
    v = Visit(page)
    page.on("request", lambda r: v.sent.append(r) if r.url.startswith(stack.intake) else None)
    page.on("pageerror", lambda e: v.errors.append(str(e)))
    return v


@pytest.mark.parametrize(
    ("lang", "locale", "words"), [("sv", "sv-SE", SWEDISH), ("auto", "zh-CN", CHINESE)], ids=["swedish", "chinese"]
)
def test_a_visitor_reads_pages_then_fills_in_the_form(
    stack: Stack, website: Website, browser: Browser, lang: str, locale: str, words: dict[str, str]
) -> None:
    v = visit(browser, stack, locale=locale)
    page = v.page
    page.goto(f"{website.origin}/{lang}/pricing")
    page.wait_for_function("() => window.leadrelay && localStorage.getItem('leadrelay.anonymous_id')")
    page.goto(f"{website.origin}/{lang}/customers")
    page.wait_for_function("() => window.leadrelay")
    anonymous_id = page.evaluate("() => localStorage.getItem('leadrelay.anonymous_id')")
    page.goto(f"{website.origin}/{lang}/demo")

    # Two page views, as Segment page calls with the first-party id (no cookie anywhere).
    views = [json.loads(r.post_data or "{}") for r in v.posts("/v1/p")]
    assert len(views) >= 2, [r.url for r in v.sent]
    for body in views[:2]:
        assert body["type"] == "page" and body["anonymousId"] == anonymous_id and body["writeKey"] == WRITE_KEY
        assert body["properties"]["url"].startswith(website.origin) and body["messageId"] and body["timestamp"]
        assert body["context"]["library"]["name"] == "leadrelay-track.js"
    assert views[0]["properties"]["url"].endswith("/pricing")
    assert page.context.cookies() == []

    # The form, rendered by the script in the page's language, with its consent box.
    email = page.get_by_label(words["email"])
    expect(email).to_be_visible()
    expect(page.get_by_text(words["consent"])).to_be_visible()
    assert page.locator("form.leadrelay-form input[name=fax_number]").count() == 1  # the honeypot, off-screen
    assert not page.locator("input[name=fax_number]").is_visible() or page.evaluate(
        "() => document.querySelector('input[name=fax_number]').getBoundingClientRect().right < 0"
    )

    # The browser's own check: nothing is sent.
    email.fill("anna.berg.at.nordvik")
    page.locator("form.leadrelay-form button[type=submit]").click()
    expect(page.get_by_text(words["email_error"])).to_be_visible()
    expect(page.get_by_text(words["consent_error"])).to_be_visible()
    shot(page, stack, f"form-errors-{locale}")
    assert v.posts("/submissions") == []

    # The server's check: its error next to the field.
    address = f"anna.{uuid.uuid4().hex[:8]}@nordvik.se"
    email.fill(address)
    page.locator("input[name=phone]").fill("+46 12345")
    page.locator("form.leadrelay-form input[type=checkbox]").check()
    page.locator("form.leadrelay-form button[type=submit]").click()
    phone_error = page.locator("[id$='-phone-error']")
    expect(phone_error).to_have_text(words["phone_error"])  # the server's error, in the page's language
    assert len(v.posts("/submissions")) == 1

    # A valid post, double-clicked: one request, the thank-you inline.
    page.locator("input[name=phone]").fill("+46 70 123 45 67")
    page.locator("input[name=first_name]").fill("Anna")
    with page.expect_response(lambda r: r.url.endswith("/submissions") and r.status == 202) as answer:
        page.locator("form.leadrelay-form button[type=submit]").dblclick()
    expect(page.get_by_text(words["thanks"])).to_be_visible()
    shot(page, stack, f"thanks-{locale}")
    assert len(v.posts("/submissions")) == 2  # the refused one and this one: the double click sent once
    lead_id = answer.value.json()["lead_id"]
    posted = dict(pair.split("=", 1) for pair in (v.posts("/submissions")[-1].post_data or "").split("&"))
    assert posted["anonymous_id"] == anonymous_id and posted["consent"] == "yes"
    assert posted["consent_language"] == locale[:2]  # the language of the text the visitor agreed to
    assert v.errors == []

    # The lead is scored, and its consent evidence is the text the visitor saw.
    stack.score(lead_id, lambda s: s["score"] > 0)
    (evidence,) = stack.consent(lead_id)
    assert evidence["language"] == locale[:2] and evidence["text"].startswith(words["consent"])
    if not stack.has_tracking_endpoints():
        pytest.skip("intake has no tracking endpoints yet (/v1/p): the earlier page views cannot count")
    # Once intake records page views and joins them on anonymous_id, the earlier views count.
    # (An engagement reason says how many: "viewed pricing (x1)".)
    score = stack.score(lead_id, lambda s: any(r["rule"] == "viewed pricing (x1)" for r in s["reasons"]))
    assert any(r["rule"] == "viewed case studies or services (x1)" for r in score["reasons"])


def test_with_scripts_blocked_the_plain_form_lands_on_the_thank_you_page(
    stack: Stack, website: Website, browser: Browser
) -> None:
    v = visit(browser, stack, java_script_enabled=False)
    page = v.page
    page.goto(f"{website.origin}/en/demo")
    page.get_by_label("Work email").fill(f"berit.{uuid.uuid4().hex[:8]}@nordvik.se")
    page.get_by_label("I agree that Leadrelay may contact me").check()
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(f"{website.origin}/en/thanks")
    expect(page.get_by_text("Thank you page")).to_be_visible()


def test_with_scripts_blocked_errors_land_on_the_error_page_and_the_script_shows_them(
    stack: Stack, website: Website, browser: Browser
) -> None:
    v = visit(browser, stack, java_script_enabled=False)
    v.page.goto(f"{website.origin}/en/demo")
    v.page.get_by_label("Work email").fill(f"berit.{uuid.uuid4().hex[:8]}@nordvik.se")
    v.page.locator("input[name=phone]").fill("+46 12345")
    v.page.get_by_label("I agree that Leadrelay may contact me").check()
    v.page.get_by_role("button", name="Send").click()
    v.page.wait_for_url(f"{website.origin}/sv/demo?**")
    assert "lr_form=demo-request" in v.page.url and "lr_error.phone=" in v.page.url
    # The error page with the script running: the server's message next to its field.
    w = visit(browser, stack)
    w.page.goto(v.page.url)
    expect(w.page.locator("[id$='-phone-error']")).not_to_be_empty()
    expect(w.page.get_by_label("E-post (jobb)")).to_be_visible()
    assert w.posts("/submissions") == []


def test_a_page_on_another_origin_cannot_post(stack: Stack, website: Website, browser: Browser) -> None:
    v = visit(browser, stack)
    page = v.page
    page.goto(f"{website.other_origin}/en/demo")
    page.get_by_label("Work email").fill(f"eve.{uuid.uuid4().hex[:8]}@nordvik.se")
    page.locator("form.leadrelay-form input[type=checkbox]").check()
    page.locator("form.leadrelay-form button[type=submit]").click()
    expect(page.get_by_text("Sending failed. Please try again in a moment.")).to_be_visible()
    # The preflight was refused, so the post itself never left the browser.
    assert v.posts("/submissions") == [] or all(r.failure for r in v.posts("/submissions"))
    r = httpx.post(
        f"{stack.intake}/v1/forms/demo-request/submissions",
        json={"email": "eve@nordvik.se", "consent": "yes"},
        headers={"Origin": website.other_origin},
    )
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers


def test_global_privacy_control_means_no_tracking(stack: Stack, website: Website, browser: Browser) -> None:
    v = visit(browser, stack)
    v.page.add_init_script("Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})")
    v.page.goto(f"{website.origin}/en/pricing")
    v.page.wait_for_function("() => window.leadrelay")
    v.page.evaluate("() => leadrelay.track('Pricing calculator used')")
    v.page.goto(f"{website.origin}/en/demo")
    expect(v.page.get_by_label("Work email")).to_be_visible()
    assert v.posts("/v1/p") == [] and v.posts("/v1/t") == []
    assert v.page.evaluate("() => localStorage.getItem('leadrelay.anonymous_id')") is None
    # Without it, the same page is recorded, and a named event too.
    w = visit(browser, stack)
    w.page.goto(f"{website.origin}/en/pricing")
    w.page.wait_for_function("() => window.leadrelay")
    w.page.evaluate("() => leadrelay.track('Pricing calculator used', {plan: 'team'})")
    w.page.wait_for_timeout(300)
    (track,) = [json.loads(r.post_data or "{}") for r in w.posts("/v1/t")]
    assert track["type"] == "track" and track["event"] == "Pricing calculator used"
    assert track["properties"] == {"plan": "team"} and len(w.posts("/v1/p")) == 1


def test_where_the_rules_require_consent_nothing_is_tracked_before_it(
    stack: Stack, website: Website, browser: Browser
) -> None:
    """track.js as rendered for ``website.require_consent: true`` (served by the site itself here, so
    its calls land on the site's server)."""
    v = visit(browser, stack)
    sent: list[Request] = []
    v.page.on("request", lambda r: sent.append(r) if r.method == "POST" else None)
    v.page.goto(f"{website.origin}/consent/pricing")
    v.page.wait_for_function("() => window.leadrelay")
    v.page.evaluate("() => leadrelay.track('Pricing calculator used')")
    v.page.wait_for_timeout(300)
    assert sent == [] and v.page.evaluate("() => localStorage.getItem('leadrelay.anonymous_id')") is None
    assert v.page.evaluate("() => leadrelay.anonymousId()") is None
    v.page.evaluate("() => leadrelay.consent(true)")  # what a form's consent box does too
    v.page.wait_for_function("() => localStorage.getItem('leadrelay.anonymous_id')")
    v.page.wait_for_timeout(300)
    calls = [json.loads(r.post_data or "{}") for r in sent]
    assert [c["type"] for c in calls] == ["page", "track"]  # what waited for consent, in order
    anonymous_id = v.page.evaluate("() => localStorage.getItem('leadrelay.anonymous_id')")
    assert {c["anonymousId"] for c in calls} == {anonymous_id}
    v.page.evaluate("() => leadrelay.consent(false)")  # withdrawn: the id is forgotten, nothing more is sent
    v.page.evaluate("() => leadrelay.page()")
    v.page.wait_for_timeout(200)
    assert len(sent) == 2 and v.page.evaluate("() => localStorage.getItem('leadrelay.anonymous_id')") is None


def test_a_form_with_a_captcha_shows_the_widget_and_sends_its_token(website: Website, browser: Browser) -> None:
    """The provider's widget is rendered into the form with the site key (its script is the page's);
    no post without a token; the token travels in the provider's field; a refused token is
    answered next to the widget, which is reset for a new one."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{website.origin}/captcha/newsletter")
    widget = page.locator("form.leadrelay-form .lr-captcha .cf-turnstile")
    expect(widget).to_have_attribute("data-sitekey", "0x4AAAA-site")
    assert page.evaluate("() => window.rendered") == ["0x4AAAA-site"]
    page.get_by_label("Work email").fill("jane@acme.de")
    page.get_by_label("Employees").fill("lots")  # checked as intake checks them
    page.get_by_label("Website").fill("acme")
    submit = page.locator("form.leadrelay-form button[type=submit]")
    submit.click()
    expect(page.get_by_text("Please confirm that you are not a robot.")).to_be_visible()
    expect(page.get_by_text("Please enter a number of employees, e.g. 250 or 51-200.")).to_be_visible()
    expect(page.get_by_text("Please enter a web address, e.g. example.com.")).to_be_visible()
    page.get_by_label("Employees").fill("51-200")
    page.get_by_label("Website").fill("https://www.acme.de/about")
    assert [p for p, _ in website.posts if p.endswith("/submissions")] == []
    page.evaluate("() => window.solve()")
    with page.expect_response(lambda r: r.url.endswith("/submissions")):
        submit.click()
    expect(page.get_by_text("Please confirm that you are not a robot.")).to_be_visible()  # refused, said so
    assert page.evaluate("() => window.resets") == 1
    page.evaluate("() => window.solve()")
    with page.expect_response(lambda r: r.url.endswith("/submissions") and r.status == 202):
        submit.click()
    expect(page.get_by_text("Thank you! We will be in touch soon.")).to_be_visible()
    sent = [parse_qs(body) for p, body in website.posts if p.endswith("/submissions")]
    assert [s["cf-turnstile-response"] for s in sent] == [["token-1"], ["token-2"]]
    assert sent[-1]["email"] == ["jane@acme.de"] and sent[-1]["company_size"] == ["51-200"] and errors == []
    page.close()
