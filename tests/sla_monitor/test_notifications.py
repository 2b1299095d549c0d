"""sla_monitor notifications without a database: the start-up checks of the environment, who hears of
what, what each channel says, and how an answer is classified and retried."""

from __future__ import annotations

import copy
import json
import re
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from leadrelay.auth import generate_key
from leadrelay.events import ActivitySummary, ActivityType, Contact, Handoff, Qualification, ScoreReason
from leadrelay.rules import NotificationType, Rules, parse_rules
from leadrelay.settings import Settings
from sla_monitor.notify.delivery import Job, classify, signed_webhook
from sla_monitor.notify.domain import (
    EMAIL,
    SLACK,
    SMTP_LANE,
    WEBHOOK,
    LeadAssignedData,
    LeadRecycledData,
    PersonRef,
    Recipient,
    SlaBreachedData,
    SlaWarningData,
    backoff,
    message_id,
)
from sla_monitor.notify.notifier import NotificationConfigError, Notifier
from sla_monitor.notify.rendering import email_message, slack_message, summarize, webhook_body
from tests.receivers import block_kit_problems, new_secret

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "example.yaml"
ALL = [t.value for t in NotificationType]
SMTP = {"smtp_host": "127.0.0.1", "smtp_port": 2525, "smtp_tls": "none", "smtp_from": "Leadrelay <lr@example.com>"}


def rules(**section: Any) -> Rules:
    data = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    data["notifications"] = {"marketing": {"emails": ["marketing@leadrelay.example"]}, **section}
    return parse_rules(data)


def settings(**overrides: Any) -> Settings:
    return Settings(config=EXAMPLE, **overrides)


def config_error(r: Rules, s: Settings) -> str:
    with pytest.raises(NotificationConfigError) as info:
        Notifier(r, s)
    return str(info.value)


# ------------------------------------------------------------------ start-up checks


def test_a_missing_secret_is_a_start_up_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LR_TEST_CRM_SECRET", raising=False)
    r = rules(
        webhooks=[{"id": "crm", "url": "https://crm.example.com/h", "secret_env": "LR_TEST_CRM_SECRET", "events": ALL}]
    )
    message = config_error(r, settings())
    assert "notifications.webhooks.0.secret_env: the environment variable LR_TEST_CRM_SECRET is not set" in message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", 'does not start with "whsec_"'),
        ("whsec_not base64!!", 'is not "whsec_" followed by base64'),
        ("whsec_c2hvcnQ=", "is 5 bytes long, fewer than 24"),
    ],
)
def test_a_bad_secret_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch, value: str, problem: str) -> None:
    monkeypatch.setenv("LR_TEST_CRM_SECRET", value)
    r = rules(
        webhooks=[{"id": "crm", "url": "https://crm.example.com/h", "secret_env": "LR_TEST_CRM_SECRET", "events": ALL}]
    )
    message = config_error(r, settings())
    assert f"secret 1 in LR_TEST_CRM_SECRET {problem}" in message
    assert value not in message and value.removeprefix("whsec_") not in message


def test_two_secrets_during_a_rotation_sign_every_request_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = new_secret(), new_secret()
    monkeypatch.setenv("LR_TEST_CRM_SECRET", f"{old} {new}")
    r = rules(
        webhooks=[{"id": "crm", "url": "https://crm.example.com/h", "secret_env": "LR_TEST_CRM_SECRET", "events": ALL}]
    )
    notifier = Notifier(r, settings())
    signers = notifier.webhooks["crm"].signers
    sent = datetime.now(UTC)
    body = '{"type":"lead.assigned"}'
    signature = " ".join(s.sign("msg_1", sent, body) for s in signers)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(sent.timestamp())), "webhook-signature": signature}
    assert Webhook(old).verify(body, headers) == {"type": "lead.assigned"}
    assert Webhook(new).verify(body, headers) == {"type": "lead.assigned"}


def test_slack_urls_and_smtp_settings_are_checked_and_every_problem_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LR_TEST_SLACK_A", raising=False)
    monkeypatch.setenv("LR_TEST_SLACK_B", "not-a-url")
    r = rules(
        slack=[
            {"id": "a", "url_env": "LR_TEST_SLACK_A", "events": ALL},
            {"id": "b", "url_env": "LR_TEST_SLACK_B", "events": ALL},
        ],
        email={"events": ALL},
    )
    message = config_error(r, settings())
    assert "notifications.slack.0.url_env: the environment variable LR_TEST_SLACK_A is not set" in message
    assert "notifications.slack.1.url_env: LR_TEST_SLACK_B does not hold an http(s) URL" in message
    assert "not-a-url" not in message
    assert "set LEADRELAY_SMTP_HOST" in message and "set LEADRELAY_SMTP_FROM" in message


def test_the_example_starts_with_nothing_to_send() -> None:
    notifier = Notifier(rules(), settings())
    assert (
        notifier.targets(NotificationType.SLA_BREACHED, "nordics", [Recipient("karin.ek", "Karin", "k@x.example")])
        == []
    )


def test_sla_monitor_refuses_to_start_without_its_secret(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["notifications"]["webhooks"] = [
        {"id": "crm", "url": "https://crm.example.com/h", "secret_env": "LEADRELAY_WEBHOOK_CRM_SECRET", "events": ALL}
    ]
    config = tmp_path / "rules.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    env = {
        "PATH": "/usr/bin:/bin",
        "LEADRELAY_CONFIG": str(config),
        "LEADRELAY_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:9/none",
        "LEADRELAY_LOG_FORMAT": "console",
        "LEADRELAY_AUTH_SIGNING_KEY": generate_key(),  # past sign-in's own start-up check
    }
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "leadrelay.cli", "serve", "sla-monitor", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "LEADRELAY_WEBHOOK_CRM_SECRET is not set" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ who hears of what


@pytest.fixture
def notifier(monkeypatch: pytest.MonkeyPatch) -> Notifier:
    monkeypatch.setenv("LR_TEST_SECRET", new_secret())
    for name in ("NORDICS", "KARIN", "ALL"):
        monkeypatch.setenv(f"LR_TEST_SLACK_{name}", f"https://hooks.slack.example/{name.lower()}")
    r = rules(
        webhooks=[
            {"id": "crm", "url": "https://crm.example.com/h", "secret_env": "LR_TEST_SECRET", "events": ALL},
            {"id": "bi", "url": "https://bi.example.com/h", "secret_env": "LR_TEST_SECRET", "events": ["sla.breached"]},
        ],
        slack=[
            {"id": "nordics", "territory": "nordics", "url_env": "LR_TEST_SLACK_NORDICS", "events": ALL},
            {"id": "karin", "person": "karin.ek", "url_env": "LR_TEST_SLACK_KARIN", "events": ALL},
            {"id": "recycled", "url_env": "LR_TEST_SLACK_ALL", "events": ["lead.recycled"]},
        ],
        email={"events": ["lead.assigned", "sla.breached", "lead.recycled"]},
    )
    return Notifier(r, settings(**SMTP))


def endpoints(notifier: Notifier, type_: str, territory: str | None, *people: str) -> list[str]:
    recipients = [r for p in people for r in notifier.recipient(p)]
    if type_ == "lead.recycled":
        recipients = notifier.marketing
    return sorted(t.endpoint for t in notifier.targets(NotificationType(type_), territory, recipients))


def test_who_hears_of_what(notifier: Notifier) -> None:
    rep = "astrid.lindqvist"
    assert endpoints(notifier, "lead.assigned", "nordics", rep) == [
        "email:astrid.lindqvist@leadrelay.example",
        "slack:nordics",
        "webhook:crm",
    ]
    assert endpoints(notifier, "lead.assigned", "dach", "jonas.becker") == [
        "email:jonas.becker@leadrelay.example",
        "webhook:crm",
    ]
    # No e-mail for warnings in this configuration; the territory's channel still hears of it.
    assert endpoints(notifier, "sla.warning", "nordics", rep) == ["slack:nordics", "webhook:crm"]
    assert endpoints(notifier, "sla.breached", "nordics", rep, "karin.ek") == [
        "email:astrid.lindqvist@leadrelay.example",
        "email:karin.ek@leadrelay.example",
        "slack:karin",
        "slack:nordics",
        "webhook:bi",
        "webhook:crm",
    ]
    assert endpoints(notifier, "lead.recycled", "dach") == [
        "email:marketing@leadrelay.example",
        "slack:recycled",
        "webhook:crm",
    ]


def test_targets_have_lanes_and_stable_ids(notifier: Notifier) -> None:
    targets = notifier.targets(
        NotificationType.SLA_BREACHED,
        "nordics",
        [Recipient("a", "A", "same@x.example"), Recipient("b", "B", "SAME@x.example")],  # one address: one e-mail
    )
    lanes = {t.endpoint: (t.channel, t.lane) for t in targets}
    assert lanes["webhook:crm"] == (WEBHOOK, "webhook:crm")
    assert lanes["slack:nordics"] == (SLACK, "slack:nordics")
    assert lanes["email:same@x.example"] == (EMAIL, SMTP_LANE)
    assert len([t for t in targets if t.channel == EMAIL]) == 1
    assert message_id("k", "webhook:crm") == message_id("k", "webhook:crm") != message_id("k", "webhook:bi")
    assert message_id("k", "webhook:crm").startswith("msg_")


def test_links_go_to_the_leads_page_in_the_console() -> None:
    # People open them from a mail app or Slack, where no bearer token goes along: the console's
    # page asks them to sign in; the API's JSON would only answer 401.
    lead = "6a1c0000-0000-4000-8000-000000000001"
    assert Notifier(rules(), settings()).link(lead) == f"http://127.0.0.1:8000/leads/{lead}"
    public = settings(public_base_url="https://leadrelay.example.com/")
    assert Notifier(rules(), public).link(lead) == f"https://leadrelay.example.com/leads/{lead}"
    console = settings(public_base_url="https://api.example.com", console_url="https://console.example.com")
    assert Notifier(rules(), console).link(lead) == f"https://console.example.com/leads/{lead}"


def test_someone_no_longer_in_the_rules_is_named_by_id(notifier: Notifier) -> None:
    assert notifier.person_ref("gone.rep") == PersonRef(id="gone.rep")
    assert notifier.recipient("gone.rep") == [Recipient("gone.rep", None, None)]


# ------------------------------------------------------------------ what each channel says

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CONTACT = Contact(
    email="anna.berg@berg-test.se",
    first_name="Anna",
    last_name="<script>alert(1)</script>",
    company="Berg & Söner AB",
    job_title="Head of Operations",
    phone="+46701234567",
    country="SE",
    company_size=250,
)
ASTRID = PersonRef(id="astrid.lindqvist", name="Astrid Lindqvist", email="astrid.lindqvist@leadrelay.example")
KARIN = PersonRef(id="karin.ek", name="Karin Ek", email="karin.ek@leadrelay.example")
LINK = "https://leadrelay.example.com/leads/L1"


def assigned() -> dict[str, Any]:
    return LeadAssignedData(
        lead_id="L1",
        cycle=1,
        link=LINK,
        rep=ASTRID,
        territory="nordics",
        assigned_at=T0,
        deadlines={"first_touch": T0 + timedelta(hours=1), "disposition": T0 + timedelta(days=2)},
        handoff=Handoff(
            contact=CONTACT,
            qualification=Qualification.HANDRAISER,
            score=55,
            reasons=[ScoreReason(rule="decision-maker title", category="fit", points=25)],
            activities=[ActivitySummary(type=ActivityType.FORM_SUBMITTED, occurred_at=T0)],
            matched_by="territory",
        ),
    ).model_dump(mode="json")


def warning() -> dict[str, Any]:
    return SlaWarningData(
        lead_id="L1",
        cycle=1,
        link=LINK,
        clock="first_touch",
        due_at=T0 + timedelta(hours=1),
        warned_at=T0 + timedelta(minutes=45),
        rep=ASTRID,
        territory="nordics",
        qualification="handraiser",
        contact=CONTACT,
    ).model_dump(mode="json")


def breached() -> dict[str, Any]:
    return SlaBreachedData(
        lead_id="L1",
        cycle=1,
        link=LINK,
        clock="disposition",
        due_at=T0 + timedelta(days=2),
        breached_at=T0 + timedelta(days=2, seconds=1),
        rep=ASTRID,
        territory="nordics",
        managers=[KARIN],
        qualification="handraiser",
        contact=None,  # the handoff was not seen: the notification still goes out
    ).model_dump(mode="json")


def recycled() -> dict[str, Any]:
    return LeadRecycledData(
        lead_id="L1",
        cycle=1,
        link=LINK,
        disposition="unreachable",
        reason=None,
        rep=ASTRID,
        territory="nordics",
        recorded_at=T0 + timedelta(days=1),
        contact=CONTACT,
    ).model_dump(mode="json")


CASES = {"lead.assigned": assigned, "sla.warning": warning, "sla.breached": breached, "lead.recycled": recycled}


def test_the_webhook_body_is_type_timestamp_and_data() -> None:
    body = webhook_body("lead.assigned", T0, assigned())
    parsed = json.loads(body)
    assert list(parsed) == ["type", "timestamp", "data"]
    assert parsed["type"] == "lead.assigned" and parsed["timestamp"] == "2026-01-05T09:00:00Z"
    assert parsed["data"]["handoff"]["contact"]["company"] == "Berg & Söner AB"
    assert parsed["data"]["deadlines"]["first_touch"] == "2026-01-05T10:00:00Z"
    assert webhook_body("lead.assigned", T0, assigned()) == body  # the same bytes on every attempt


@pytest.mark.parametrize("type_", list(CASES))
def test_every_slack_message_is_valid_block_kit(type_: str) -> None:
    message = slack_message(summarize(type_, CASES[type_](), rules()))
    assert block_kit_problems(message) == []
    # Everything Slack reads as mrkdwn is escaped (& < >); the header is plain_text, shown as is.
    mrkdwn = json.dumps([message["text"], [b for b in message["blocks"] if b["type"] != "header"]])
    assert "<script>" not in mrkdwn
    if type_ != "sla.breached":  # the breach in CASES has no contact
        assert "&lt;script&gt;" in mrkdwn
        assert "Berg &amp; S\\u00f6ner AB" in mrkdwn


def test_slack_shows_deadlines_in_the_readers_time_zone() -> None:
    message = slack_message(summarize("sla.warning", warning(), rules()))
    fields = [f["text"] for b in message["blocks"] if b["type"] == "section" for f in b.get("fields", [])]
    due = int((T0 + timedelta(hours=1)).timestamp())
    assert any(f"<!date^{due}^{{date_short_pretty}} {{time}}|Mon 05 Jan 2026, 10:00 UTC>" in f for f in fields)


@pytest.mark.parametrize("type_", list(CASES))
def test_every_email_has_a_text_and_an_html_part(type_: str) -> None:
    summary = summarize(type_, CASES[type_](), rules(), recipient="karin.ek@leadrelay.example")
    msg = email_message(
        summary,
        sender="Leadrelay <lr@leadrelay.example>",
        to="karin.ek@leadrelay.example",
        to_name="Karin Ek",
        message_id="msg_abc",
        date=T0,
    )
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed["To"] == "Karin Ek <karin.ek@leadrelay.example>"
    assert parsed["Message-ID"] == "<msg_abc@leadrelay.example>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert summary.intro in text and LINK in text
    assert f'href="{LINK}"' in html and 'name="viewport"' in html
    assert "<script>" not in html


def test_what_the_subjects_say() -> None:
    r = rules()
    assert summarize("lead.assigned", assigned(), r).title == (
        "New lead for you: Anna <script>alert(1)</script> (Berg & Söner AB), first touch by 10:00 UTC"
    )
    assert summarize("sla.warning", warning(), r).title.startswith("Due in 15 min: first touch on Anna")
    assert summarize("sla.breached", breached(), r).title == "SLA missed: status on lead L1 (Astrid Lindqvist)"
    recycled_summary = summarize("lead.recycled", recycled(), r)
    assert recycled_summary.title.endswith("(unreachable)")
    assert "Reason: the rep could not reach the lead" in recycled_summary.intro


def test_a_breach_tells_each_reader_why_they_hear_of_it() -> None:
    r = rules()
    assert "assigned to you" in summarize("sla.breached", breached(), r, "astrid.lindqvist@leadrelay.example").footer
    assert (
        "you manage the territory Nordics"
        in summarize("sla.breached", breached(), r, "KARIN.EK@leadrelay.example").footer
    )


# ------------------------------------------------------------------ answers, retries


def answer(status: int, headers: dict[str, str] | None = None, text: str = "") -> httpx.Response:
    return httpx.Response(status, headers=headers, text=text)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_delivered(status: int) -> None:
    outcome = classify(answer(status))
    assert outcome.delivered and not outcome.retry


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_408_429_and_5xx_are_retried(status: int) -> None:
    outcome = classify(answer(status, text="busy"))
    assert not outcome.delivered and outcome.retry and outcome.status == status
    assert outcome.error is not None and outcome.error.startswith(str(status))


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 410, 413, 422])
def test_other_answers_are_final_with_the_answer(status: int) -> None:
    outcome = classify(answer(status, text='{"error": "unknown pipeline"}' + "x" * 1000))
    assert not outcome.delivered and not outcome.retry
    assert outcome.error is not None and "unknown pipeline" in outcome.error and len(outcome.error) < 400


def test_retry_after_is_respected() -> None:
    assert classify(answer(429, {"retry-after": "120"})).retry_after == 120
    assert classify(answer(503, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})).retry_after == 0
    assert classify(answer(503, {"retry-after": "soon"})).retry_after is None
    assert backoff(1, 5, 3600, retry_after=120) >= 120
    assert backoff(1, 5, 3600, retry_after=99999) <= 3600


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    for attempts, step in [(1, 5), (2, 10), (3, 20), (6, 160), (30, 3600)]:
        delays = [backoff(attempts, 5, 3600) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays), (attempts, min(delays), max(delays))
        assert len(set(delays)) > 1  # jitter
    # With the defaults, 24 hours of retries are about thirty attempts, not thousands.
    elapsed, attempts = 0.0, 0
    while elapsed < 86400:
        attempts += 1
        elapsed += backoff(attempts, 5, 3600)
    assert 20 < attempts < 60


def test_smtp_password_is_a_secret_setting() -> None:
    password = secrets.token_urlsafe(12)
    s = settings(smtp_password=password)
    assert isinstance(s.smtp_password, SecretStr) and s.smtp_password.get_secret_value() == password
    assert password not in repr(s) and password not in str(s.model_dump())


def test_the_guides_verification_snippet_accepts_leadrelays_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "docs" / "notifications.md").read_text(encoding="utf-8")
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "standardwebhooks" in b)
    secret = new_secret()
    monkeypatch.setenv("LEADRELAY_WEBHOOK_CRM_SECRET", secret)
    seen: set[str] = set()
    handled: list[tuple[str, Any]] = []
    namespace: dict[str, Any] = {"already_handled": lambda i: i in seen, "handle": lambda t, d: handled.append((t, d))}
    exec(snippet, namespace)  # noqa: S102 - the guide's own code
    receive = namespace["receive"]
    job = Job(
        id=1,
        endpoint="webhook:crm",
        channel=WEBHOOK,
        lane="webhook:crm",
        recipient=None,
        recipient_name=None,
        message_id="msg_readme",
        type="lead.assigned",
        data=assigned(),
        occurred_at=T0,
    )
    body, headers = signed_webhook(job, (Webhook(secret),), datetime.now(UTC))
    assert receive(body, headers) == 200
    assert handled == [("lead.assigned", assigned())]
    seen.add("msg_readme")
    assert receive(body, headers) == 200 and len(handled) == 1  # a retry is acknowledged, not handled again
    assert receive(body.replace(b"L1", b"L2"), headers) == 401  # tampered
    stale, stale_headers = signed_webhook(job, (Webhook(secret),), datetime.now(UTC) - timedelta(minutes=10))
    assert receive(stale, stale_headers) == 401  # replayed later
    _, other = signed_webhook(job, (Webhook(new_secret()),), datetime.now(UTC))
    assert receive(body, other) == 401  # another secret
