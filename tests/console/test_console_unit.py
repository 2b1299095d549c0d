"""The console's pure parts: message catalogues, language choice, CSRF tokens, cookies, what the
pages show from the services' answers, the charts' geometry, and the vendored files."""

from __future__ import annotations

import hashlib
import re
import string
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.requests import Request

from console import i18n, views
from console.security import CSRF_COOKIE, SESSION_COOKIE, Csrf, cookie_secure, safe_next

PACKAGE = Path(i18n.__file__).parent
SECRET = "k" * 8 + "Qw3rTy!uIoP@sDfGhJkLzXcVbNm1234"  # 40 characters, varied: a test key


# ---------------------------------------------------------------- languages


@pytest.mark.parametrize("lang", sorted(i18n.CATALOGUES))
def test_every_catalogue_has_every_message_with_the_same_placeholders(lang: str) -> None:
    catalogue = i18n.CATALOGUES[lang]
    assert set(catalogue) == set(i18n.EN), f"{lang}: missing {set(i18n.EN) - set(catalogue)}"
    fields = string.Formatter()
    for key, text in catalogue.items():
        assert text.strip(), f"{lang}.{key} is empty"
        mine = {f for _, f, _, _ in fields.parse(text) if f}
        english = {f for _, f, _, _ in fields.parse(i18n.EN[key]) if f}
        assert mine == english, f"{lang}.{key}: placeholders {mine}, English has {english}"


def test_translations_are_translated() -> None:
    for lang in ("sv", "de", "nl", "zh"):
        wordy = {k for k, v in i18n.EN.items() if len(re.sub(r"\{\w+\}|\W", "", v)) > 12}
        same = [k for k, v in i18n.CATALOGUES[lang].items() if v == i18n.EN[k] and k in wordy]
        assert not same, f"{lang} still says in English: {same}"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("sv-SE,sv;q=0.9,en;q=0.8", "sv"),
        ("fr-FR,fr;q=0.9,de;q=0.7,en;q=0.5", "de"),
        ("zh-TW,zh;q=0.9", "zh"),
        ("en-GB;q=0.2,nl;q=0.8", "nl"),
        ("ja, ko", "en"),
        ("de;q=0, sv;q=0.1", "sv"),
        ("nl, de", "nl"),  # equal weights: the first wins
        ("*;q=0.5, xx-YY;q=oops, de", "de"),
    ],
)
def test_language_from_accept_language(header: str | None, expected: str) -> None:
    assert i18n.negotiate(header) == expected


def test_durations_in_each_language() -> None:
    assert i18n.duration(42, "en") == "42 s"
    assert i18n.duration(12 * 60 + 5, "en") == "12 min"
    assert i18n.duration(3 * 3600 + 20 * 60, "en") == "3 h 20 min"
    assert i18n.duration(2 * 86400 + 4 * 3600 + 59, "de") == "2 T. 4 Std."
    assert i18n.duration(3600, "zh") == "1小时"
    assert i18n.duration(None, "sv") == "–"


# ---------------------------------------------------------------- CSRF and cookies


def test_csrf_token_is_bound_to_the_browser_and_the_session() -> None:
    csrf = Csrf(SECRET)
    token = csrf.token("nonce-a" * 6, "session-1")
    ok = {CSRF_COOKIE: "nonce-a" * 6, SESSION_COOKIE: "session-1"}
    assert csrf.valid(token, ok)
    assert not csrf.valid(token, {**ok, CSRF_COOKIE: "nonce-b" * 6}), "another browser"
    assert not csrf.valid(token, {**ok, SESSION_COOKIE: "session-2"}), "another session"
    assert not csrf.valid(token, {SESSION_COOKIE: "session-1"}), "no browser cookie"
    assert not csrf.valid(None, ok)
    assert not csrf.valid(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], ok), "tampered"
    assert not Csrf(SECRET[::-1]).valid(token, ok), "signed with another key"


def test_csrf_token_before_sign_in_has_no_session() -> None:
    csrf = Csrf(SECRET)
    token = csrf.token("n" * 43, None)
    assert csrf.valid(token, {CSRF_COOKIE: "n" * 43})
    assert not csrf.valid(token, {CSRF_COOKIE: "n" * 43, SESSION_COOKIE: "someone"})


def test_csrf_token_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    csrf = Csrf(SECRET)
    then = (datetime.now(UTC) - timedelta(hours=13)).timestamp()
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: then)  # itsdangerous stamps tokens with time.time()
        token = csrf.token("n" * 43, None)
    fresh = csrf.token("n" * 43, None)
    assert csrf.valid(fresh, {CSRF_COOKIE: "n" * 43})
    assert not csrf.valid(token, {CSRF_COOKIE: "n" * 43})


def _request(url: str) -> Request:
    scheme, rest = url.split("://", 1)
    host = rest.split("/", 1)[0]
    return Request(
        {
            "type": "http",
            "scheme": scheme,
            "server": None,
            "path": "/",
            "query_string": b"",
            "headers": [(b"host", host.encode())],
        }
    )


@pytest.mark.parametrize(
    ("url", "secure"),
    [
        ("http://127.0.0.1:8000", False),
        ("http://localhost:8000", False),
        ("http://[::1]:8000", False),
        ("https://127.0.0.1:8000", True),
        ("http://console.example.com", True),
        ("http://10.1.2.3:8000", True),
    ],
)
def test_session_cookie_is_secure_outside_localhost(url: str, secure: bool) -> None:
    assert cookie_secure(_request(url)) is secure


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/leads/x?y=1", "/leads/x?y=1"),
        ("https://evil.example/", "/"),
        ("//evil.example", "/"),
        ("/\\evil", "/"),
        (None, "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_only_local_paths_to_go_back_to(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


# ---------------------------------------------------------------- what the pages show


def _clock(name: str, status: str = "running", cycle: int = 1) -> dict[str, object]:
    return {"name": name, "cycle": cycle, "due_at": "2026-05-04T10:00:00Z", "status": status}


def test_a_touch_stops_the_first_touch_clock_before_the_sla_monitor_hears_of_it() -> None:
    sla = {"clocks": [_clock("disposition"), _clock("first_touch")]}
    assert [c["status"] for c in views.clocks_now(sla, {"touches": [], "dispositions": []}, 1)] == [
        "running",
        "running",
    ]
    touched = {"touches": [{"cycle": 1, "touched_at": "2026-05-04T09:00:00Z"}], "dispositions": []}
    assert [(c["name"], c["status"]) for c in views.clocks_now(sla, touched, 1)] == [
        ("first_touch", "met"),
        ("disposition", "running"),
    ]
    decided = {"touches": [], "dispositions": [{"cycle": 1, "disposition": "accepted"}]}
    assert [c["status"] for c in views.clocks_now(sla, decided, 1)] == ["met", "met"]
    # Feedback of an earlier cycle stops nothing; a breach stays a breach.
    old = {"touches": [{"cycle": 0}], "dispositions": []}
    assert [c["status"] for c in views.clocks_now(sla, old, 1)] == ["running", "running"]
    breached = {"clocks": [_clock("first_touch", "breached")]}
    assert views.clocks_now(breached, touched, 1)[0]["status"] == "breached"


def test_queue_signature_ignores_the_ticking_seconds() -> None:
    item = {
        "lead_id": "a",
        "cycle": 1,
        "status": "new",
        "touches": 0,
        "next_deadline": {"name": "first_touch", "status": "running", "seconds_left": 100},
    }
    later = {**item, "next_deadline": {**item["next_deadline"], "seconds_left": 99}}  # type: ignore[dict-item]
    assert views.queue_signature([item]) == views.queue_signature([later])
    assert views.queue_signature([item]) != views.queue_signature([{**item, "touches": 1}])
    assert views.queue_signature([item]) != views.queue_signature([item, {**item, "lead_id": "b"}])


def test_names_in_any_script() -> None:
    assert views.person_name({"first_name": "娜", "last_name": "李", "email": "li@x.cn"}) == "李娜"
    assert views.person_name({"first_name": "Wei", "last_name": "Chen", "email": "c@x.cn"}) == "Wei Chen"
    assert views.person_name({"first_name": "Åsa", "last_name": "Öberg", "email": "a@x.se"}) == "Åsa Öberg"
    assert views.person_name({"first_name": "Zoë", "email": "z@x.nl"}) == "Zoë"
    assert views.person_name({"email": "only@x.se"}) == "only@x.se"


def test_timeline_is_newest_first_with_form_names_and_who_logged_it() -> None:
    activities = [
        {"type": "page_viewed", "occurred_at": "2026-05-04T08:00:00Z", "url": "https://x/pricing"},
        {"type": "form_submitted", "occurred_at": "2026-05-04T08:05:00Z", "detail": "demo-request"},
    ]
    feedback = {
        "touches": [
            {
                "channel": "call",
                "touched_at": "2026-05-04T09:00:00Z",
                "rep_id": "a",
                "note": "hi",
                "logged_by": {"kind": "person", "id": "karin.ek", "role": "manager"},
            }
        ],
        "dispositions": [
            {
                "disposition": "accepted",
                "recorded_at": "2026-05-04T09:30:00Z",
                "rep_id": "a",
                "reason": None,
                "logged_by": {"kind": "person", "id": "a", "role": "rep"},
            }
        ],
    }
    events = views.timeline(activities, feedback, {"a": "Astrid", "karin.ek": "Karin"}, {"demo-request": "Book a demo"})
    assert [e["kind"] for e in events] == ["disposition", "touch", "activity", "activity"]
    assert events[1]["rep"] == "Astrid" and events[1]["logged_by"] == "Karin"
    assert events[0]["logged_by"] is None  # logged by the rep themself
    assert events[2]["detail"] == "Book a demo"
    assert events[3]["detail"] == "https://x/pricing"


def test_handraiser_form_is_the_latest_handraiser_form_filled_in() -> None:
    acts = [{"type": "form_submitted", "detail": "newsletter"}, {"type": "form_submitted", "detail": "contact-sales"}]
    assert views.handraiser_form(acts, ["demo-request", "contact-sales"]) == "contact-sales"
    assert views.handraiser_form(acts[:1], ["demo-request"]) is None


def test_bars_and_rings() -> None:
    assert [b["pct"] for b in views.bars([("a", 10), ("b", 5), ("c", 0)])] == [100.0, 50.0, 0.0]
    assert [b["pct"] for b in views.bars([("a", None), ("b", 0)])] == [0.0, 0.0]
    assert views.bars([("p50", 30)], scale=120)[0]["pct"] == 25.0
    half = views.donut(0.5)
    filled, rest = (float(x) for x in half["dash"].split())
    assert filled == pytest.approx(rest, abs=0.02) and half["pct"] == 50
    assert views.donut(None)["pct"] is None and views.donut(None)["dash"].startswith("0.0 ")
    assert views.donut(1.7)["pct"] == 100


def test_review_agenda() -> None:
    board = [
        {"lead_id": "1", "disposition": "junk", "touches": 3},
        {"lead_id": "2", "disposition": "recycle", "touches": 1},
        {"lead_id": "3", "disposition": "unreachable", "touches": 0},
    ]
    agenda = views.agenda(board)
    assert [i["lead_id"] for i in agenda["junk"]] == ["1"]
    assert [i["lead_id"] for i in agenda["few_touches"]] == ["2", "3"]


def test_rule_conditions_read_like_rules() -> None:
    assert views.describe_condition({"field": "company_size", "between": [50.0, 5000.0]}) == "company_size 50–5000"
    assert views.describe_condition({"field": "industry", "in": ["saas", "software"]}) == "industry ∈ {saas, software}"
    assert views.describe_condition({"field": "phone", "exists": True}) == "phone ✓"


# ---------------------------------------------------------------- static files and templates


def test_vendored_htmx_is_the_recorded_release() -> None:
    readme = (PACKAGE / "static" / "README.md").read_text(encoding="utf-8")
    recorded = re.search(r"SHA-256 of `htmx\.min\.js`.*?`([0-9a-f]{64})`", readme, re.DOTALL)
    assert recorded, "static/README.md records no SHA-256 for htmx.min.js"
    actual = hashlib.sha256((PACKAGE / "static" / "htmx.min.js").read_bytes()).hexdigest()
    assert actual == recorded.group(1)
    assert re.search(r"\| 2\.\d+\.\d+ \|", readme), "the htmx version (2.x) is not recorded"
    assert (PACKAGE / "static" / "htmx.LICENSE.txt").is_file()


@pytest.mark.parametrize("template", sorted(p.name for p in (PACKAGE / "templates").glob("*.html")))
def test_no_inline_script_or_style_in_templates(template: str) -> None:
    """The CSP allows scripts and styles only from the console's own files."""
    text = (PACKAGE / "templates" / template).read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "an inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", text), "an inline event handler (onclick=...)"
    assert not re.search(r"\sstyle\s*=", text), "an inline style attribute"
    assert not re.search(r"<style", text), "an inline <style>"
    assert "hx-on" not in text and "javascript:" not in text
    assert not re.search(r"https?://(?!\{\{)", text.replace("http://www.w3.org/2000/svg", "")), "an outside URL"


def test_every_message_the_templates_ask_for_exists() -> None:
    asked = set()
    for path in (PACKAGE / "templates").glob("*.html"):
        asked |= set(re.findall(r"\bt\('([a-z0-9_]+)'(?!\s*\+)", path.read_text(encoding="utf-8")))
    assert asked, "no t('...') found: the pattern is wrong"
    assert asked - set(i18n.EN) == set(), f"messages missing from the catalogues: {asked - set(i18n.EN)}"
