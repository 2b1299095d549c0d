"""Notifications end to end, in one process, on SQLite and on PostgreSQL, against real servers on
127.0.0.1: a webhook receiver that verifies every request with the standardwebhooks library, Slack-like
receivers that check the Block Kit, and an SMTP server (aiosmtpd). Time is a FrozenClock moved by the
test, so warnings, deadlines and retry delays pass at once.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from structlog.testing import capture_logs

from leadrelay.events import LEADS_ASSIGNED, Record
from leadrelay.rules import Rules, parse_rules
from leadrelay.settings import Settings
from leadrelay.unavailable import cancel_and_wait
from sla_monitor.clocks.service import fire_warnings
from sla_monitor.notify.delivery import Dispatcher
from tests.harness import EXAMPLE, Harness, running
from tests.receivers import HttpReceiver, SmtpServer, new_secret

SENDER = "Leadrelay <leadrelay@leadrelay.example>"
BASE_URL = "https://leadrelay.example.com"
ALL = ["lead.assigned", "sla.warning", "sla.breached", "lead.recycled"]

ANNA = {
    "email": "anna.berg@berg-soner-test.se",
    "first_name": "Anna",
    "last_name": "Berg",
    "company": "Berg & Söner AB",
    "job_title": "Head of Operations",
    "country": "Sweden",
    "phone": "070-123 45 67",
    "company_size": "250",
}


def rules_with(notifications: dict[str, Any], warn_before: str | None = "25%") -> Rules:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["notifications"] = {"marketing": data["notifications"]["marketing"], **notifications}
    if warn_before is None:
        data["sla"].pop("warn_before", None)
    else:
        data["sla"]["warn_before"] = warn_before
    return parse_rules(data, "test rules")


def with_smtp(settings: Settings, smtp: SmtpServer | None = None, **overrides: Any) -> Settings:
    update: dict[str, Any] = {
        "public_base_url": BASE_URL,
        "notify_poll_seconds": 0.05,
        "notify_timeout_seconds": 2.0,
        "notify_backoff_seconds": 1.0,
        "notify_backoff_max_seconds": 60.0,
    }
    if smtp is not None:
        update.update(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none", smtp_from=SENDER)
    update.update(overrides)
    return settings.model_copy(update=update)


async def until(check: Callable[[], Awaitable[bool]] | Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def deliveries(h: Harness, **params: Any) -> list[dict[str, Any]]:
    r = await h.client.get("/v1/notifications/deliveries", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return list(r.json())


async def submit(h: Harness, fields: dict[str, Any], form: str = "demo-request") -> str:
    r = await h.client.post(f"/v1/forms/{form}/submissions", json=fields)
    assert r.status_code == 202, r.text
    return str(r.json()["lead_id"])


@asynccontextmanager
async def receivers(*items: HttpReceiver) -> AsyncIterator[None]:
    for item in items:
        await item.start()
    try:
        yield
    finally:
        for item in items:
            await item.stop()


@pytest.fixture
def smtp() -> Any:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


# ------------------------------------------------------------------ every event reaches its people


@dataclass
class Everyone:
    crm: HttpReceiver
    nordics: HttpReceiver
    karin: HttpReceiver
    marketing: HttpReceiver
    smtp: SmtpServer


async def test_every_notification_reaches_its_people_once(
    settings: Settings, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_secret()
    e = Everyone(
        crm=HttpReceiver(secret=secret),
        nordics=HttpReceiver(slack=True),
        karin=HttpReceiver(slack=True),
        marketing=HttpReceiver(slack=True),
        smtp=smtp,
    )
    monkeypatch.setenv("LEADRELAY_TEST_CRM_SECRET", secret)
    monkeypatch.setenv("LEADRELAY_TEST_SLACK_NORDICS", e.nordics.url)
    monkeypatch.setenv("LEADRELAY_TEST_SLACK_KARIN", e.karin.url)
    monkeypatch.setenv("LEADRELAY_TEST_SLACK_MARKETING", e.marketing.url)
    rules = rules_with(
        {
            "webhooks": [{"id": "crm", "url": e.crm.url, "secret_env": "LEADRELAY_TEST_CRM_SECRET", "events": ALL}],
            "slack": [
                {
                    "id": "nordics-sales",
                    "territory": "nordics",
                    "url_env": "LEADRELAY_TEST_SLACK_NORDICS",
                    "events": ["lead.assigned", "sla.breached"],
                },
                {"id": "karin", "person": "karin.ek", "url_env": "LEADRELAY_TEST_SLACK_KARIN", "events": ALL},
                {"id": "marketing", "url_env": "LEADRELAY_TEST_SLACK_MARKETING", "events": ["lead.recycled"]},
            ],
            "email": {"events": ALL},
            "marketing": {"emails": ["marketing@leadrelay.example"]},
        }
    )
    async with receivers(e.crm, e.nordics, e.karin, e.marketing), running(with_smtp(settings, smtp), rules=rules) as h:
        started = h.clock.now()
        lead = await submit(h, ANNA)
        assignment = await h.wait_for(f"/v1/leads/{lead}/assignment")
        rep = assignment["rep_id"]
        rep_email = f"{rep}@leadrelay.example"
        assert assignment["territory"] == "nordics"

        # lead.assigned: the CRM (signed), the territory's Slack channel, the rep's inbox.
        await until(lambda: len(e.crm.webhooks("lead.assigned")) == 1, "lead.assigned webhook")
        await until(lambda: len(smtp.to(rep_email)) == 1, "lead.assigned e-mail")
        await until(lambda: len(e.nordics.accepted()) == 1, "lead.assigned in Slack")
        body = e.crm.webhooks("lead.assigned")[0]
        assert set(body) == {"type", "timestamp", "data"}
        data = body["data"]
        assert data["lead_id"] == lead and data["cycle"] == 1 and data["territory"] == "nordics"
        assert data["rep"] == {"id": rep, "name": data["rep"]["name"], "email": rep_email}
        assert data["link"] == f"{BASE_URL}/leads/{lead}"  # the lead's page in the console
        assert data["deadlines"] == {"first_touch": "2026-01-05T10:00:00Z", "disposition": "2026-01-07T09:00:00Z"}
        assert data["handoff"]["contact"]["phone"] == "+46701234567"
        assert data["handoff"]["qualification"] == "handraiser"
        request = e.crm.accepted()[0]
        assert request.headers["webhook-id"].startswith("msg_")
        assert request.headers["webhook-signature"].startswith("v1,")

        mail = smtp.to(rep_email)[0]
        assert mail.message["From"] == SENDER
        assert mail.message["Subject"] == "New lead for you: Anna Berg (Berg & Söner AB), first touch by 10:00 UTC"
        assert mail.message.get_content_type() == "multipart/alternative"
        text, html = mail.part("plain"), mail.part("html")
        assert "+46701234567" in text and data["link"] in text and "Mon 05 Jan 2026, 10:00 UTC" in text
        assert 'name="viewport"' in html and 'href="tel:+46701234567"' in html
        assert "Berg &amp; Söner AB" in html and "Berg & Söner AB" not in html  # escaped
        slack = e.nordics.accepted()[0].json()
        assert "Anna Berg" in slack["blocks"][0]["text"]["text"]
        assert any(b["type"] == "actions" and b["elements"][0]["url"] == data["link"] for b in slack["blocks"])
        assert e.karin.requests == [] and e.marketing.requests == []

        # sla.warning: 25% of the hour before the first-touch deadline, to the rep.
        h.clock.set(started + timedelta(minutes=46))
        await until(lambda: len(e.crm.webhooks("sla.warning")) == 1, "sla.warning webhook")
        await until(lambda: len(smtp.to(rep_email)) == 2, "sla.warning e-mail")
        warning = e.crm.webhooks("sla.warning")[0]["data"]
        assert warning["clock"] == "first_touch" and warning["due_at"] == "2026-01-05T10:00:00Z"
        assert warning["contact"]["email"] == ANNA["email"]
        assert smtp.to(rep_email)[1].message["Subject"] == "Due in 14 min: first touch on Anna Berg (Berg & Söner AB)"
        clocks = {c["name"]: c for c in (await h.client.get(f"/v1/leads/{lead}/sla")).json()["clocks"]}
        assert clocks["first_touch"]["warned_at"] == "2026-01-05T09:46:00Z"

        # sla.breached: the rep and the territory's manager (Karin Ek manages the Nordics).
        h.clock.set(started + timedelta(minutes=61))
        await until(lambda: len(e.crm.webhooks("sla.breached")) == 1, "sla.breached webhook")
        await until(lambda: len(smtp.to("karin.ek@leadrelay.example")) == 1, "the manager's e-mail")
        await until(lambda: len(smtp.to(rep_email)) == 3, "the rep's breach e-mail")
        await until(lambda: len(e.karin.accepted()) == 1 and len(e.nordics.accepted()) == 2, "breach in Slack")
        breach = e.crm.webhooks("sla.breached")[0]["data"]
        assert breach["clock"] == "first_touch" and breach["breached_at"] == "2026-01-05T10:01:00Z"
        assert [m["id"] for m in breach["managers"]] == ["karin.ek"]
        manager_mail = smtp.to("karin.ek@leadrelay.example")[0]
        assert manager_mail.message["Subject"].startswith("SLA missed: first touch on Anna Berg")
        assert "you manage the territory Nordics" in manager_mail.part("plain")

        # lead.recycled: to marketing, with the reason.
        await h.settle()
        r = await h.client.post(f"/v1/leads/{lead}/touches", json={"rep_id": rep, "channel": "call"})
        assert r.status_code == 202, r.text
        reason = "budget frozen until Q3 <b>"
        r = await h.client.post(
            f"/v1/leads/{lead}/dispositions", json={"rep_id": rep, "disposition": "recycle", "reason": reason}
        )
        assert r.status_code == 202, r.text
        await until(lambda: len(e.crm.webhooks("lead.recycled")) == 1, "lead.recycled webhook")
        await until(lambda: len(smtp.to("marketing@leadrelay.example")) == 1, "marketing's e-mail")
        await until(lambda: len(e.marketing.accepted()) == 1, "lead.recycled in Slack")
        recycled = e.crm.webhooks("lead.recycled")[0]["data"]
        assert (recycled["disposition"], recycled["reason"], recycled["rep"]["id"]) == ("recycle", reason, rep)
        marketing_mail = smtp.to("marketing@leadrelay.example")[0]
        assert reason in marketing_mail.part("plain") and "budget frozen until Q3 &lt;b&gt;" in marketing_mail.part(
            "html"
        )

        # Far past every deadline: nothing more is sent, and each notification went out once.
        h.clock.set(started + timedelta(days=10))
        await h.settle()
        await asyncio.sleep(0.5)
        assert Counter(b["type"] for b in e.crm.webhooks()) == {t: 1 for t in ALL}
        ids = [r.headers["webhook-id"] for r in e.crm.requests]
        assert len(ids) == len(set(ids)) == 4
        assert len(smtp.mails) == 5  # the rep's three, the manager's, marketing's
        assert sorted(len(smtp.to(a)) for a in (rep_email, "karin.ek@leadrelay.example")) == [1, 3]
        assert [len(x.requests) for x in (e.nordics, e.karin, e.marketing)] == [2, 1, 1]
        for receiver in (e.crm, e.nordics, e.karin, e.marketing):
            assert receiver.errors == []
        log = await deliveries(h)
        assert len(log) == 4 + 4 + 5  # webhooks, Slack, e-mails
        assert {d["status"] for d in log} == {"delivered"}
        assert all(d["attempts"] == 1 and d["last_status"] in (200, None) for d in log)
        assert await deliveries(h, status="failed") == []
        webhook_log = await deliveries(h, endpoint="webhook:crm")
        assert sorted(d["webhook_id"] for d in webhook_log) == sorted(ids)
        metrics = (await h.client.get("/metrics")).text
        assert (
            'leadrelay_notification_deliveries_total{channel="webhook",endpoint="webhook:crm",outcome="delivered"}'
            in metrics
        )
        assert 'leadrelay_notification_deliveries_total{channel="email",endpoint="smtp",outcome="delivered"}' in metrics
        assert "leadrelay_notification_queue_depth" in metrics


# ------------------------------------------------------------------ a receiver down for a while


async def test_a_receiver_down_for_a_while_gets_each_notification_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_secret()
    crm = HttpReceiver(secret=secret)  # not started: its port refuses connections
    monkeypatch.setenv("LEADRELAY_TEST_CRM_SECRET", secret)
    hook = {"id": "crm", "url": crm.url, "secret_env": "LEADRELAY_TEST_CRM_SECRET", "events": ["lead.assigned"]}
    rules = rules_with({"webhooks": [hook]})
    try:
        async with running(with_smtp(settings), rules=rules) as h:
            leads = [await submit(h, {"email": f"lead{i}@kunde{i}-test.de", "country": "DE"}) for i in range(3)]
            for lead in leads:
                await h.wait_for(f"/v1/leads/{lead}/assignment")

            async def all_attempted(status: int | None, attempts: int) -> bool:
                log = await deliveries(h)
                return len(log) == 3 and all(d["attempts"] >= attempts and d["last_status"] == status for d in log)

            await until(lambda: all_attempted(None, 1), "attempts against a closed port")
            log = await deliveries(h)
            assert all(d["status"] == "pending" and d["last_error"].startswith("connection failed") for d in log)

            # It comes back, answering 500 for a while.
            crm.status = 500
            await crm.start()
            h.clock.advance(timedelta(seconds=61))
            await until(lambda: all_attempted(500, 2), "attempts answered with 500")
            assert {d["status"] for d in await deliveries(h)} == {"pending"}

            # Then it works: each notification is accepted once, under the id it had from the start.
            crm.status = 200
            h.clock.advance(timedelta(seconds=61))
            await until(lambda: all_attempted(200, 3), "delivery after the receiver recovered")
            log = await deliveries(h)
            assert {d["status"] for d in log} == {"delivered"}
            h.clock.advance(timedelta(hours=1))
            await asyncio.sleep(0.5)
            accepted = [r.headers["webhook-id"] for r in crm.accepted()]
            assert sorted(accepted) == sorted(d["webhook_id"] for d in log)
            assert len(set(accepted)) == len(accepted) == 3
            tried = Counter(r.headers["webhook-id"] for r in crm.requests)
            assert all(tried[i] >= 2 for i in accepted), tried  # the 500s carried the same ids
            assert {r.json()["data"]["lead_id"] for r in crm.accepted()} == set(leads)
            assert crm.errors == []
    finally:
        await crm.stop()


# ------------------------------------------------------------------ rejected, slow, and given up


async def test_a_rejected_delivery_fails_with_the_answer_and_can_be_redelivered(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_secret()
    rejecting = HttpReceiver(secret=secret)
    rejecting.status, rejecting.body = 400, b'{"error": "unknown pipeline"}'
    slow = HttpReceiver(secret=secret)
    slow.delay = 8.0  # longer than the 2 s timeout
    fast = HttpReceiver(secret=secret)
    monkeypatch.setenv("LEADRELAY_TEST_SECRET", secret)
    hooks = [
        {"id": name, "url": r.url, "secret_env": "LEADRELAY_TEST_SECRET", "events": ["lead.assigned"]}
        for name, r in (("crm", rejecting), ("slow", slow), ("fast", fast))
    ]
    rules = rules_with({"webhooks": hooks})
    async with (
        receivers(rejecting, slow, fast),
        running(with_smtp(settings, notify_timeout_seconds=2.0), rules=rules) as h,
    ):
        submitted = time.monotonic()
        lead = await submit(h, ANNA)
        await h.wait_for(f"/v1/leads/{lead}/assignment")
        # The slow endpoint delays neither the lead nor the other endpoints.
        # (The receivers share the test's event loop: the timeout leaves room for a loaded machine.)
        await until(lambda: len(fast.accepted()) == 1, "the fast endpoint", timeout=7)
        assert time.monotonic() - submitted < slow.delay

        await until(lambda: rejecting.requests != [], "the rejecting endpoint")
        [failed] = await until_list(h, status="failed")
        assert failed["endpoint"] == "webhook:crm" and failed["last_status"] == 400
        assert "unknown pipeline" in failed["last_error"] and failed["attempts"] == 1
        assert failed["next_attempt_at"] is None
        detail = (await h.client.get(f"/v1/notifications/deliveries/{failed['id']}")).json()
        assert detail["data"]["lead_id"] == lead and detail["type"] == "lead.assigned"
        await until(lambda: slow.requests != [], "the slow endpoint's first attempt")
        h.clock.advance(timedelta(minutes=5))
        assert len(rejecting.requests) == 1, "a 400 is not retried"

        # Fixed: redeliver sends it again under the same webhook-id.
        rejecting.status = 200
        with capture_logs() as logs:
            r = await h.as_("ops.desk").post(f"/v1/notifications/deliveries/{failed['id']}/redeliver")
        assert r.status_code == 202, r.text
        # The audit trail says who asked for it.
        [audit] = [e for e in logs if e["event"] == "redelivery_requested"]
        assert (audit["delivery_id"], audit["by"], audit["role"]) == (failed["id"], "ops.desk", "ops")
        assert audit["endpoint"] == "webhook:crm" and audit["lead_id"] == lead
        assert r.json()["status"] == "pending"
        await until(lambda: len(rejecting.accepted()) == 1, "the redelivery")
        assert rejecting.accepted()[0].headers["webhook-id"] == rejecting.requests[0].headers["webhook-id"]
        assert rejecting.accepted()[0].headers["webhook-id"] == failed["webhook_id"]

        # The slow one timed out and is retried; once it answers in time it is delivered.
        slow.delay = 0

        async def slow_timed_out_twice() -> bool:
            [d] = await deliveries(h, endpoint="webhook:slow")
            return d["attempts"] == 2 and d["status"] == "pending" and d["last_error"].startswith("timeout")

        await until(slow_timed_out_twice, "the slow endpoint's second timeout")
        h.clock.advance(timedelta(minutes=2))
        await until(lambda: deliveries_all_delivered(h), "every delivery delivered")
        [d] = await deliveries(h, endpoint="webhook:slow")
        assert d["attempts"] == 3 and d["last_status"] == 200

        assert (await h.client.post("/v1/notifications/deliveries/999999/redeliver")).status_code == 404
        assert (await h.client.post("/v1/notifications/deliveries/abc/redeliver")).status_code == 422
        assert (await h.client.get("/v1/notifications/deliveries", params={"status": "lost"})).status_code == 422
        assert (await h.client.get("/v1/notifications/deliveries", params={"limit": 0})).status_code == 422
        for receiver in (rejecting, slow, fast):
            assert receiver.errors == []


async def until_list(h: Harness, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        nonlocal found
        found = await deliveries(h, **params)
        return bool(found)

    await until(check, f"deliveries {params}")
    return found


async def deliveries_all_delivered(h: Harness) -> bool:
    return {d["status"] for d in await deliveries(h)} == {"delivered"}


async def test_retries_go_on_for_the_retry_window_then_the_delivery_fails(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_secret()
    down = HttpReceiver(secret=secret)
    down.status = 503
    monkeypatch.setenv("LEADRELAY_TEST_SECRET", secret)
    hook = {"id": "crm", "url": down.url, "secret_env": "LEADRELAY_TEST_SECRET", "events": ["lead.assigned"]}
    rules = rules_with({"webhooks": [hook]}, warn_before=None)
    async with receivers(down), running(with_smtp(settings, notify_backoff_max_seconds=3600.0), rules=rules) as h:
        lead = await submit(h, {"email": "retry@kunde-test.de", "country": "DE"})
        await h.wait_for(f"/v1/leads/{lead}/assignment")

        async def attempted(n: int) -> bool:
            log = await deliveries(h)
            return len(log) == 1 and log[0]["attempts"] == n

        await until(lambda: attempted(1), "the first attempt")
        h.clock.advance(timedelta(hours=23))
        await until(lambda: attempted(2), "a retry after 23 hours")
        [d] = await deliveries(h)
        assert d["status"] == "pending" and d["last_status"] == 503
        # 24 hours after the notification, the next failure is the last.
        h.clock.advance(timedelta(hours=2))
        await until(lambda: attempted(3), "the last attempt")
        [d] = await deliveries(h, status="failed")
        assert d["last_status"] == 503 and d["next_attempt_at"] is None
        assert d["last_error"].startswith("gave up after 3 attempts: 503")
        assert len(down.requests) == 3 and len({r.headers["webhook-id"] for r in down.requests}) == 1
        h.clock.advance(timedelta(days=2))
        await asyncio.sleep(0.3)
        assert len(down.requests) == 3


# ------------------------------------------------------------------ exactly once, whatever repeats


async def test_redelivered_events_and_concurrent_senders_make_no_duplicate(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_secret()
    crm = HttpReceiver(secret=secret)
    crm.delay = 0.05
    monkeypatch.setenv("LEADRELAY_TEST_SECRET", secret)
    rules = rules_with(
        {"webhooks": [{"id": "crm", "url": crm.url, "secret_env": "LEADRELAY_TEST_SECRET", "events": ALL}]},
        warn_before="15m",
    )
    async with receivers(crm), running(with_smtp(settings), rules=rules) as h:
        ctx = next(c for c in h.runtime.contexts if c.name == "sla-monitor")
        # Two more senders on the same database, as replicas would be.
        extra = [Dispatcher(ctx, ctx.resources.notifier) for _ in range(2)]
        tasks = [asyncio.create_task(d.run()) for d in extra]
        try:
            leads = [await submit(h, {"email": f"once{i}@kunde{i}-test.at", "country": "AT"}) for i in range(6)]
            for lead in leads:
                await h.wait_for(f"/v1/leads/{lead}/assignment")
            await until(lambda: len(crm.accepted()) == 6, "six lead.assigned")

            # The same assignment again: the same record (the inbox drops it) and the same
            # assignment under a new event id (routing's duplicate): no new delivery either way.
            spy = h.bus.consumer("test-spy", [LEADS_ASSIGNED])
            await spy.start()
            records = await spy.getmany(100, 500)
            await spy.stop()
            assert len(records) == 6
            again = [Record(topic=r.topic, key=r.key, value=r.value, headers=r.headers) for r in records]
            renamed = [
                Record(
                    topic=r.topic,
                    key=r.key,
                    value=r.value,
                    headers=tuple((k, b"again-" + v if k == "ce_id" else v) for k, v in r.headers),
                )
                for r in records
            ]
            await h.bus.publish(again + renamed)
            await h.settle()

            # Warnings claimed by several timers at once fire once each.
            h.clock.advance(timedelta(minutes=46))
            fired = await asyncio.gather(*(fire_warnings(ctx) for _ in range(4)))
            await until(lambda: len(crm.webhooks("sla.warning")) >= 6, "six warnings")
            await asyncio.sleep(0.5)
            await h.settle()
            assert sum(fired) <= 6
            assert Counter(b["type"] for b in crm.webhooks()) == {"lead.assigned": 6, "sla.warning": 6}
            ids = [r.headers["webhook-id"] for r in crm.requests]
            assert len(ids) == len(set(ids)) == 12, "a webhook was sent twice"
            log = await deliveries(h)
            assert len(log) == 12 and {d["status"] for d in log} == {"delivered"}
            assert crm.errors == []
        finally:
            # A cancellation can be swallowed inside the database driver: cancelled until they stop.
            assert not await cancel_and_wait(tasks, timeout=30), "an extra sender did not stop"


# ------------------------------------------------------------------ secrets stay secret


async def test_no_secret_reaches_the_logs_or_the_delivery_log(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = new_secret()
    slack_secret = secrets.token_urlsafe(18)
    slack_token = f"T0TESTTEAM/B0TESTHOOK/{slack_secret}"
    password = secrets.token_urlsafe(12)
    smtp = SmtpServer(login=("leadrelay", password))
    smtp.start()
    crm = HttpReceiver(secret=secret)
    crm.status = 500  # failing, so errors are logged
    slack_down = HttpReceiver(slack=True)  # never started: connection refused
    monkeypatch.setenv("LEADRELAY_TEST_SECRET", secret)
    monkeypatch.setenv("LEADRELAY_TEST_SLACK", f"http://127.0.0.1:{slack_down.port}/services/{slack_token}")
    rules = rules_with(
        {
            "webhooks": [{"id": "crm", "url": crm.url, "secret_env": "LEADRELAY_TEST_SECRET", "events": ALL}],
            "slack": [{"id": "all", "url_env": "LEADRELAY_TEST_SLACK", "events": ALL}],
            "email": {"events": ALL},
        }
    )
    caplog.set_level("WARNING")
    try:
        with capture_logs() as logs:
            async with (
                receivers(crm),
                running(
                    with_smtp(settings, smtp, smtp_username="leadrelay", smtp_password=SecretStr(password)), rules=rules
                ) as h,
            ):
                lead = await submit(h, ANNA)
                assignment = await h.wait_for(f"/v1/leads/{lead}/assignment")
                rep_email = f"{assignment['rep_id']}@leadrelay.example"
                await until(lambda: len(smtp.to(rep_email)) == 1, "the e-mail, sent with a login")

                async def failed(times: int) -> bool:
                    log = await deliveries(h)
                    return {"slack", "webhook"} <= {d["channel"] for d in log if d["attempts"] >= times}

                await until(lambda: failed(1), "the first failures")
                h.clock.advance(timedelta(seconds=61))
                await until(lambda: failed(2), "the retries")
                api = (await h.client.get("/v1/notifications/deliveries")).text
                api += (await h.client.get("/v1/notifications/deliveries/1")).text
                api += (await h.client.get("/metrics")).text
    finally:
        smtp.stop()
    assert smtp.logins and all(ok for _user, ok in smtp.logins)
    logged = repr(logs) + caplog.text
    assert "notification_retry" in logged  # the failures were logged...
    for needle in (secret, secret.removeprefix("whsec_"), slack_token, slack_secret, password):
        assert needle not in logged, "a secret reached the logs"
        assert needle not in api, "a secret reached the API"
    assert "slack:all" in api


async def test_the_delivery_log_pages_newest_first(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = new_secret()
    crm = HttpReceiver(secret=secret)
    monkeypatch.setenv("LEADRELAY_TEST_SECRET", secret)
    rules = rules_with(
        {"webhooks": [{"id": "crm", "url": crm.url, "secret_env": "LEADRELAY_TEST_SECRET", "events": ALL}]},
        warn_before=None,
    )
    async with receivers(crm), running(with_smtp(settings), rules=rules) as h:
        leads = [await submit(h, {"email": f"page{i}@kunde{i}-test.nl", "country": "NL"}) for i in range(3)]
        await until(lambda: len(crm.accepted()) == 3, "three webhooks")
        first = await deliveries(h, limit=2)
        assert [d["id"] for d in first] == sorted((d["id"] for d in first), reverse=True)
        rest = await deliveries(h, before=first[-1]["id"])
        assert len(first) + len(rest) == 3
        assert {d["lead_id"] for d in first + rest} == set(leads)
        [one] = await deliveries(h, lead_id=leads[0])
        assert one["lead_id"] == leads[0] and one["type"] == "lead.assigned"
        assert one["created_at"] == datetime(2026, 1, 5, 9, 0, tzinfo=UTC).isoformat().replace("+00:00", "Z")


async def test_each_endpoint_has_its_own_concurrency_limit(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = new_secret()
    slow = HttpReceiver(secret=secret)
    slow.delay = 0.3
    other = HttpReceiver(secret=secret)
    monkeypatch.setenv("LEADRELAY_TEST_SECRET", secret)
    hooks = [
        {"id": name, "url": r.url, "secret_env": "LEADRELAY_TEST_SECRET", "events": ["lead.assigned"]}
        for name, r in (("slow", slow), ("other", other))
    ]
    rules = rules_with({"webhooks": hooks}, warn_before=None)
    async with receivers(slow, other), running(with_smtp(settings, notify_concurrency=2), rules=rules) as h:
        for i in range(8):
            await submit(h, {"email": f"c{i}@kunde{i}-test.ch", "country": "CH"})
        await until(lambda: len(other.accepted()) == 8, "the other endpoint", timeout=10)
        assert len(slow.accepted()) < 8, "the other endpoint waited for the slow one"
        await until(lambda: len(slow.accepted()) == 8, "the slow endpoint")
        assert slow.most_in_flight == 2  # in parallel, and never more than the limit
        assert slow.errors == other.errors == []


async def test_an_endpoint_removed_from_the_rules_fails_its_deliveries(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_secret()
    gone = HttpReceiver(secret=secret)  # never listening
    monkeypatch.setenv("LEADRELAY_TEST_SECRET", secret)
    hook = {"id": "old-crm", "url": gone.url, "secret_env": "LEADRELAY_TEST_SECRET", "events": ["lead.assigned"]}
    async with running(with_smtp(settings), rules=rules_with({"webhooks": [hook]}, warn_before=None)) as h:
        lead = await submit(h, ANNA)
        await until_list(h, lead_id=lead)
        clock = h.clock
    # Restarted without that webhook: what was pending for it fails, saying why; it cannot be redelivered.
    async with running(with_smtp(settings), rules=rules_with({}, warn_before=None), clock=clock) as h:
        h.clock.advance(timedelta(minutes=5))
        [d] = await until_list(h, status="failed")
        assert d["endpoint"] == "webhook:old-crm" and d["last_error"] == "webhook 'old-crm' is no longer configured"
        r = await h.client.post(f"/v1/notifications/deliveries/{d['id']}/redeliver")
        assert r.status_code == 409 and "no longer configured" in r.json()["detail"]
