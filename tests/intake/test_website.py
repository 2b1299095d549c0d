"""Forms on a website, over HTTP: where a plain HTML post lands, CORS per form and source, the
scripts' cache headers and integrity, what the rules file says of it, and never a 500."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from intake.cors import ALLOW_HEADERS, decide
from intake.domain import missing
from intake.forms.messages import language
from intake.forms.website import (
    DEFAULT_FIELDS,
    answer_page,
    embed_script,
    error_page,
    fields_of,
    page_of,
    thank_you,
    wants_html,
)
from leadrelay.bus.memory import MemoryBus
from leadrelay.events import LEADS_INTAKE, Envelope, FormSubmitted, Record
from leadrelay.rules import Rules, RulesError, parse_rules
from tests.harness import EXAMPLE, SOURCE_KEYS, Harness, running, settings_for

SITE = "https://www.leadrelay.example"
EVIL = "https://evil.example"
FORM = "/v1/forms/demo-request/submissions"
HTML_POST = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
VERIFY = "https://verify.leadrelay.example/siteverify"


def website_rules(**demo: Any) -> Rules:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for form in data["forms"]:
        if form["id"] == "demo-request":
            form.update(demo)
    return parse_rules(data)


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running(settings_for(tmp_path), services=["intake"]) as harness:
        yield harness


async def published(h: Harness) -> list[Record]:
    assert isinstance(h.bus, MemoryBus)
    return await h.bus.read_topic(LEADS_INTAKE)


# ---------------------------------------------------------------- plain HTML posts


async def test_a_plain_html_post_lands_on_the_thank_you_page_and_an_api_client_keeps_json(h: Harness) -> None:
    anon = h.as_(None)
    fields = {"email": "anna.berg@nordvik.se", "first_name": "Anna"}
    r = await anon.post(FORM, data=fields, headers={**HTML_POST, "Origin": SITE})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"{SITE}/thanks"
    r = await anon.post(FORM, data=fields, headers={"Accept": "application/json"})
    assert r.status_code == 202 and "lead_id" in r.json()
    r = await anon.post(FORM, files={"email": (None, "anna.berg@nordvik.se")}, headers={**HTML_POST, "Origin": SITE})
    assert r.status_code == 303 and r.headers["location"] == f"{SITE}/thanks"  # multipart too


async def test_a_plain_html_post_with_errors_goes_back_to_its_page_with_the_errors(h: Harness) -> None:
    anon = h.as_(None)
    page = f"{SITE}/demo?utm_source=ad&lr_error.email=old#top"
    r = await anon.post(
        FORM, data={"email": "nope", "phone": "12", "page_url": page}, headers={**HTML_POST, "Origin": SITE}
    )
    assert r.status_code == 303, r.text
    where = urlsplit(r.headers["location"])
    assert f"{where.scheme}://{where.netloc}{where.path}" == f"{SITE}/demo" and not where.fragment
    query = parse_qs(where.query)
    assert query["utm_source"] == ["ad"] and query["lr_form"] == ["demo-request"]
    assert "@" in query["lr_error.email"][0] and query["lr_error.phone"]  # the old error is replaced


async def test_no_open_redirect(h: Harness) -> None:
    """A page elsewhere (in the post or the Referer) never becomes the redirect: JSON instead."""
    anon = h.as_(None)
    for fields, headers in (
        ({"email": "nope", "page_url": f"{EVIL}/phish"}, {}),
        ({"email": "nope"}, {"Referer": f"{EVIL}/phish"}),
        ({"email": "nope", "page_url": "javascript:alert(1)"}, {}),
        ({"email": "nope", "page_url": f"{SITE}@evil.example/x"}, {}),
        ({"email": "nope", "page_url": "//evil.example/x"}, {}),
    ):
        r = await anon.post(FORM, data=fields, headers={**HTML_POST, **headers})
        assert r.status_code == 422, (fields, headers, r.headers.get("location"))
        assert r.headers["content-type"].startswith("text/html") and "evil" not in r.text and "<a " not in r.text
    # A form without a thank-you page, posted from no page of its origins: intake's own page, no link.
    r = await anon.post("/v1/forms/newsletter/submissions", data={"email": "a@nordvik.se"}, headers=HTML_POST)
    assert r.status_code == 202 and "Thank you!" in r.text and "<a " not in r.text


async def test_a_browser_sending_only_its_origin_as_referer_is_not_sent_to_the_home_page(tmp_path: Path) -> None:
    """A browser posting to another origin sends only ``https://site/`` as Referer (the default
    referrer policy): with no thank-you or error URL, going "back" there would land the visitor on the
    home page, without the form or its errors. Intake answers with its own page instead (in the
    visitor's language, linking back to the site), never the API's JSON."""
    rules = website_rules(thank_you_url=None, error_url=None)
    async with running(settings_for(tmp_path), services=["intake"], rules=rules) as h:
        anon = h.as_(None)
        browser = {**HTML_POST, "Origin": SITE, "Referer": f"{SITE}/", "Accept-Language": "sv-SE,sv;q=0.9,en;q=0.8"}
        r = await anon.post(FORM, data={"email": "anna@", "phone": "12", "consent": ""}, headers=browser)
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html"), r.text
        assert "location" not in r.headers and r.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert '<html lang="sv">' in r.text and f'<a href="{SITE}/">Tillbaka till formuläret</a>' in r.text
        assert "<strong>E-post (jobb)</strong>: Ange en giltig e-postadress." in r.text
        assert "<strong>Telefon</strong>: Ange ett giltigt telefonnummer" in r.text
        data = {"email": "anna@nordvik.se", "Company size": "lots", "country": "Narnia"}
        r = await anon.post(FORM, data=data, headers=browser)
        assert "<strong>Antal anställda</strong>: Ange ett antal anställda" in r.text  # a known field not shown
        assert "<strong>Land</strong>: Ange ett land, t.ex. Sverige eller SE." in r.text
        assert await published(h) == []
        r = await anon.post(FORM, data={"email": "anna@nordvik.se", "country": "Sverige"}, headers=browser)
        assert r.status_code == 202, r.text  # as the form asks for it: "Land"
        r = await anon.post(
            FORM, data={"email": "anna.berg@nordvik.se", "consent": "yes"}, headers={**browser, "Accept-Language": "zh"}
        )
        assert r.status_code == 202 and "谢谢！我们会尽快与您联系。" in r.text and '<html lang="zh">' in r.text
        events = [Envelope.from_record(r).data for r in await published(h)]
        assert [(e.contact.email, e.contact.country) for e in events if isinstance(e, FormSubmitted)] == [
            ("anna@nordvik.se", "SE"),
            ("anna.berg@nordvik.se", None),
        ]
        # A Referer that names a page is still gone back to, with the errors for the snippet to show.
        r = await anon.post(FORM, data={"email": "x"}, headers={**browser, "Referer": f"{SITE}/demo"})
        assert r.status_code == 303 and r.headers["location"].startswith(f"{SITE}/demo?lr_form=demo-request")
        # Markup in a field's error or name is text on the page.
        r = await anon.post(FORM, data={"email": "x", "<b>x</b>": "y" * 3000}, headers=browser)
        assert r.status_code == 422 and "<b>" not in r.text


async def test_the_error_url_and_going_back_to_the_page_after_success(tmp_path: Path) -> None:
    rules = website_rules(thank_you_url=None, error_url=f"{SITE}/oops?x=1")
    async with running(settings_for(tmp_path), services=["intake"], rules=rules) as h:
        anon = h.as_(None)
        r = await anon.post(FORM, data={"email": "x"}, headers=HTML_POST)
        assert r.status_code == 303 and r.headers["location"].startswith(f"{SITE}/oops?x=1&lr_form=demo-request")
        r = await anon.post(
            FORM, data={"email": "a@nordvik.se"}, headers={**HTML_POST, "Referer": f"{SITE}/demo?lr_error=old"}
        )
        assert r.status_code == 303
        assert r.headers["location"] == f"{SITE}/demo?lr_form=demo-request&lr_submitted=1"


# ---------------------------------------------------------------- CORS


async def test_a_preflight_from_an_allowed_origin_is_answered(h: Harness) -> None:
    r = await h.as_(None).options(
        FORM,
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,idempotency-key",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == SITE
    assert "POST" in r.headers["access-control-allow-methods"]
    allowed = {v.strip().lower() for v in r.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "authorization", "anonymousid", "idempotency-key"} <= allowed
    assert "Origin" in r.headers["vary"]


async def test_another_origin_is_refused_with_no_cors_headers_and_nothing_published(h: Harness) -> None:
    anon = h.as_(None)
    r = await anon.options(FORM, headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    before = len(await published(h))
    for origin in (EVIL, "null", "https://www.leadrelay.example.evil.example", "http://www.leadrelay.example"):
        r = await anon.post(FORM, json={"email": "anna.berg@nordvik.se"}, headers={"Origin": origin})
        assert r.status_code == 403, origin
        assert "access-control-allow-origin" not in r.headers
        assert origin in r.json()["detail"] and "may not post form demo-request" in r.json()["detail"]
    assert len(await published(h)) == before


async def test_the_actual_request_from_an_allowed_origin_carries_cors_headers_even_on_errors(h: Harness) -> None:
    anon = h.as_(None)
    r = await anon.post(FORM, json={"email": "anna.berg@nordvik.se"}, headers={"Origin": SITE})
    assert r.status_code == 202 and r.headers["access-control-allow-origin"] == SITE
    r = await anon.post(FORM, json={"email": "nope"}, headers={"Origin": SITE})
    assert r.status_code == 422 and r.headers["access-control-allow-origin"] == SITE  # the page can show them


async def test_no_origin_or_intakes_own_origin_is_not_cross_origin(h: Harness) -> None:
    anon = h.as_(None)
    assert (await anon.post(FORM, json={"email": "a@nordvik.se"})).status_code == 202
    assert (
        await anon.post(FORM, json={"email": "a@nordvik.se"}, headers={"Origin": "http://leadrelay"})
    ).status_code == 202


def test_tracking_paths_allow_the_origins_of_sources_and_forms_their_own() -> None:
    rules = website_rules()
    assert decide(rules, "/v1/p", SITE).allowed and decide(rules, "/v1/batch", SITE).allowed
    assert not decide(rules, "/v1/t", EVIL).allowed and decide(rules, "/v1/t", EVIL).governed
    assert not decide(rules, "/v1/forms/newsletter/submissions", SITE).allowed  # newsletter allows none
    assert not decide(rules, "/v1/forms/nope/submissions", EVIL).governed  # the route's 404
    assert not decide(rules, "/v1/leads", EVIL).governed


async def test_a_tracking_preflight_is_answered_for_a_sources_origin(h: Harness) -> None:
    r = await h.as_(None).options(
        "/v1/p",
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "anonymousid",
        },
    )
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == SITE
    assert "AnonymousId" in r.headers["access-control-allow-headers"]
    assert "AnonymousId" in ALLOW_HEADERS
    r = await h.as_(None).options("/v1/t", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert r.status_code == 403


async def test_a_write_key_is_taken_from_its_own_sources_origins_only(tmp_path: Path) -> None:
    """CORS per source: a page may send tracking calls with a source's write key only from that
    source's origins, not from the origins of another source."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    shop = "https://shop.leadrelay.example"
    for source in data["sources"]:
        if source["id"] == "website-tracking":
            source["origins"] = [shop]
    async with running(settings_for(tmp_path), services=["intake"], rules=parse_rules(data)) as h:
        anon = h.as_(None)
        page = {"type": "page", "anonymousId": "a-1", "properties": {"url": f"{shop}/"}}
        r = await anon.post("/v1/p", json={**page, "writeKey": SOURCE_KEYS["website"]}, headers={"Origin": shop})
        assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
        assert "website" in r.json()["detail"] and shop in r.json()["detail"]
        assert await published(h) == []
        r = await anon.post(
            "/v1/p", json={**page, "writeKey": SOURCE_KEYS["website-tracking"]}, headers={"Origin": shop}
        )
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == shop, r.text
        r = await anon.post("/v1/p", json={**page, "writeKey": SOURCE_KEYS["website"]}, headers={"Origin": SITE})
        assert r.status_code == 200, r.text
        r = await anon.post("/v1/p", json={**page, "writeKey": SOURCE_KEYS["website"]})  # a server: no origin
        assert r.status_code == 200, r.text
        assert len(await published(h)) == 3


# ---------------------------------------------------------------- the scripts


@pytest.mark.parametrize("path", ["/v1/forms/demo-request/embed.js", "/v1/track.js"])
async def test_the_scripts_can_be_cached_and_pinned(h: Harness, path: str) -> None:
    anon = h.as_(None)
    r = await anon.get(path, headers={"Origin": EVIL})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "public, max-age=300"
    assert r.headers["access-control-allow-origin"] == "*" and r.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in r.headers
    etag = r.headers["etag"]
    again = await anon.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content and again.headers["etag"] == etag
    assert (await anon.get(path, headers={"If-None-Match": '"other"'})).status_code == 200
    info = (await anon.get("/v1/forms/demo-request/embed")).json()
    script = info["tracking"] if path.endswith("track.js") else info["script"]
    assert script["integrity"] == "sha384-" + base64.b64encode(hashlib.sha384(r.content).digest()).decode()
    assert script["bytes"] == len(r.content) and script["url"].endswith(path)
    assert "http" not in r.text.split("*/", 1)[1].replace("http.", "")  # no third-party address in the code


async def test_the_embed_carries_the_forms_fields_labels_consent_and_honeypot(h: Harness) -> None:
    anon = h.as_(None)
    js = (await anon.get("/v1/forms/demo-request/embed.js")).text
    for needle in (
        '"honeypot":"fax_number"',
        '"field":"consent"',
        "Jag godkänner",
        "我同意",
        '"name":"phone","type":"tel"',
    ):
        assert needle in js
    assert "</script" not in js.lower()
    info = (await anon.get("/v1/forms/demo-request/embed")).json()
    assert info["embed"].startswith('<div data-leadrelay-form="demo-request"></div>\n<script src="http://leadrelay/')
    assert f'integrity="{info["script"]["integrity"]}"' in info["embed"]
    html = info["html"]
    # UTF-8 whatever the site's own charset: a name in any script arrives as typed.
    assert 'action="http://leadrelay/v1/forms/demo-request/submissions" method="post" accept-charset="UTF-8"' in html
    assert 'name="email" required' in html and 'name="fax_number"' in html and 'name="consent"' in html
    assert 'data-write-key="YOUR_WRITE_KEY"' in info["tracking_html"]
    assert (await anon.get("/v1/forms/nope/embed.js")).status_code in (404, 422)
    assert (await anon.get("/v1/forms/nope/embed")).status_code in (404, 422)


def test_a_captcha_forms_embed_carries_the_widget_but_not_how_it_is_verified() -> None:
    captcha = {"kind": "recaptcha", "site_key": "6Lc-site", "secret_env": "RECAPTCHA_SECRET", "verify_url": VERIFY}
    form = website_rules(captcha=captcha).form("demo-request")
    assert form is not None
    js = embed_script(form).body.decode()
    assert '"captcha":{"kind":"recaptcha","site_key":"6Lc-site","field":"g-recaptcha-response"}' in js
    assert "RECAPTCHA_SECRET" not in js and VERIFY not in js
    errors = [{"loc": ["body", "g-recaptcha-response"], "msg": "refused by the captcha verifier", "type": "x"}]
    assert "<li>Bekräfta att du inte är en robot.</li>" in answer_page(form, "sv", errors, None)


async def test_the_tracking_script_carries_the_privacy_settings(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["website"] = {"require_consent": True, "honour_do_not_track": False}
    async with running(settings_for(tmp_path), services=["intake"], rules=parse_rules(data)) as h:
        js = (await h.as_(None).get("/v1/track.js")).text
    assert js.rstrip().endswith('{"consent":true,"dnt":false,"gpc":true});')


# ---------------------------------------------------------------- required fields, the rules


async def test_configured_required_fields_and_consent_are_required_by_the_server_too(tmp_path: Path) -> None:
    rules = website_rules(
        fields=[{"name": "email", "type": "email", "required": True}, {"name": "company", "required": True}],
        consent={"field": "consent", "required": True, "text": {"en": "I agree"}},
    )
    async with running(settings_for(tmp_path), services=["intake"], rules=rules) as h:
        r = await h.as_(None).post(FORM, json={"email": "anna.berg@nordvik.se", "company": "  "})
        assert r.status_code == 422
        assert {e["loc"][1] for e in r.json()["detail"]} == {"company", "consent"}
        r = await h.as_(None).post(FORM, json={"email": "anna.berg@nordvik.se", "Company": "Nordvik", "consent": "yes"})
        assert r.status_code == 202, r.text
        event = Envelope.from_record((await published(h))[-1]).data
        assert isinstance(event, FormSubmitted) and event.contact.company == "Nordvik"


def test_defaults_and_missing() -> None:
    rules = website_rules()
    assert fields_of(next(f for f in rules.forms if f.id == "newsletter")) == list(DEFAULT_FIELDS)
    form = rules.form("demo-request")
    assert form is not None and missing(form, {"email": "a@b.se"}) == []  # consent not required in the example


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"origins": ["https://a.example/path"]}, "no path"),
        ({"origins": ["*"]}, "not an origin"),
        ({"origins": ["ftp://a.example"]}, "not an origin"),
        ({"origins": ["https://user@a.example"]}, "no path, query or user"),
        ({"thank_you_url": "https://elsewhere.example/thanks"}, "not on one of the form's origins"),
        ({"thank_you_url": "javascript:alert(1)"}, r"not an http\(s\) URL"),
        ({"fields": [{"name": "email"}, {"name": "email"}]}, "listed twice"),
        ({"fields": [{"name": "Email"}]}, "pattern"),
        ({"honeypot": "company", "fields": [{"name": "company"}]}, "honeypot or consent"),
        ({"consent": {"field": "consent", "text": {"sv": "Ja"}}}, "en"),
    ],
)
def test_the_rules_file_is_checked(change: dict[str, Any], needle: str) -> None:
    with pytest.raises(RulesError, match=needle):
        website_rules(**change)


def test_origins_are_normalised() -> None:
    rules = website_rules(origins=["HTTPS://WWW.Leadrelay.Example:443/", "http://localhost:8080"])
    form = rules.form("demo-request")
    assert form is not None and form.origins == ["https://www.leadrelay.example", "http://localhost:8080"]


# ---------------------------------------------------------------- never a 500


@pytest.mark.parametrize(
    ("headers", "data"),
    [
        ({"Origin": "https://[::1"}, {"email": "a@b.se"}),
        ({"Origin": "\u00e9".encode("latin-1")}, {"email": "a@b.se"}),
        ({"Referer": "http://[::1/x"}, {"email": "x"}),
        ({}, {"email": "x", "page_url": "https://[bad"}),
        ({}, {"email": "x", "page_url": "https://www.leadrelay.example:99999/"}),
        ({"If-None-Match": "\u00e9".encode("latin-1")}, {"email": "x"}),
    ],
)
async def test_bad_headers_and_pages_never_give_a_500(
    h: Harness, headers: dict[str, Any], data: dict[str, str]
) -> None:
    r = await h.as_(None).post(FORM, data=data, headers={**HTML_POST, **headers})
    assert r.status_code < 500 and r.status_code in (202, 303, 403, 422), (r.status_code, r.text)
    r = await h.as_(None).get("/v1/forms/demo-request/embed.js", headers=headers)
    assert r.status_code == 200


# ---------------------------------------------------------------- the pure rules


async def test_a_plain_post_past_the_rate_limit_is_a_page_too(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, form_burst_per_address=1, form_rate_per_address=0.1)
    async with running(settings, services=["intake"]) as h:
        anon, browser = h.as_(None), {**HTML_POST, "Origin": SITE, "Accept-Language": "nl"}
        r = await anon.post(FORM, data={"email": "a@nordvik.se"}, headers=browser)
        assert r.status_code == 303
        r = await anon.post(FORM, data={"email": "b@nordvik.se"}, headers={**browser, "Referer": f"{SITE}/demo"})
        assert r.status_code == 303 and r.headers["location"].startswith(f"{SITE}/demo?lr_form=demo-request&lr_error=")
        r = await anon.post(FORM, data={"email": "b@nordvik.se"}, headers=browser)  # no page: intake's own
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 10
        assert r.headers["content-type"].startswith("text/html") and "Versturen mislukt." in r.text
        r = await anon.post(FORM, data={"email": "b@nordvik.se"})  # an API client: JSON
        assert r.status_code == 429 and "address" in r.json()["detail"]
        assert len(await published(h)) == 1


def test_the_visitors_language() -> None:
    assert language("sv-SE,sv;q=0.9,en-US;q=0.8") == "sv" and language("") == "en" and language("fr-FR,fr") == "en"
    assert language("fr;q=1, de;q=0.5, zh-CN;q=0.7") == "zh" and language("nl;q=0, de") == "de"
    assert language("de;q=abc, nl") == "nl" and language("*") == "en"


def test_where_a_plain_post_lands() -> None:
    form = website_rules(thank_you_url=None).form("demo-request")
    assert form is not None
    assert wants_html("application/x-www-form-urlencoded", "text/html,*/*") and wants_html(
        "multipart/form-data", "TEXT/HTML"
    )
    assert not wants_html("application/json", "text/html") and not wants_html(
        "application/x-www-form-urlencoded", "*/*"
    )
    assert thank_you(form, f"{SITE}/demo#form") == f"{SITE}/demo?lr_form=demo-request&lr_submitted=1"
    assert thank_you(form, f"{SITE}:443/demo") == f"{SITE}:443/demo?lr_form=demo-request&lr_submitted=1"
    assert thank_you(form, f"{EVIL}/demo") is None and thank_you(form, None) is None
    errors = [{"loc": ["body", "email"], "msg": "bad"}, {"loc": ["body"], "msg": "too many fields"}]
    assert error_page(form, f"{SITE}/demo?a=1", errors) == (
        f"{SITE}/demo?a=1&lr_form=demo-request&lr_error.email=bad&lr_error=too+many+fields"
    )
    assert error_page(form, "https://www.leadrelay.example.evil.example/", "x") is None
    assert page_of({"Page URL": f"{SITE}/a"}, f"{SITE}/b") == f"{SITE}/a" and page_of({}, f"{SITE}/b") == f"{SITE}/b"
    # A bare origin (what a browser sends to another site by default) names no page.
    assert (
        page_of({}, f"{SITE}/") is None and page_of({}, SITE) is None and page_of({}, f"{SITE}/?a=1") == f"{SITE}/?a=1"
    )
    assert page_of({"page_url": f"{SITE}/"}, None) == f"{SITE}/"  # said by the page itself: taken
