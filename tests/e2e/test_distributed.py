"""The end-to-end scenario, distributed: real Kafka broker, real PostgreSQL, every service its own process.

form -> score -> assignment -> SLA alert -> touch -> disposition, with the SLA
policy shortened to seconds, the rep signed in with a token that every service verifies on
its own. Then the delivery guarantees that only a real broker can show: a poison record is
dead-lettered while its partition keeps flowing, and SIGTERM shuts every service down
cleanly; no token or API key shows up in any service's log. The rep and their manager are
notified by e-mail (a real SMTP server) and a CRM by signed webhooks, the CRM being down until
after the breach and then answering 500 for a while.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from leadrelay.auth import Tokens, generate_key
from leadrelay.bus.kafka import KafkaBus, create_topics
from leadrelay.events import LEADS_INTAKE, Record, all_topics, dlq_topic
from tests.e2e.distributed import Cluster, cluster
from tests.harness import EXAMPLE, SIGNING_KEY, bearer, example_rules
from tests.receivers import HttpReceiver, SmtpServer, new_secret, serve_in_thread

# A protected endpoint of each service: each must check credentials by itself.
PROTECTED = {
    "intake": ("POST", "/v1/events", {"type": "page_viewed", "email": "probe@probe-test.nl"}, "website-tracking"),
    "scoring": ("GET", "/v1/leads", None, "crm"),
    "routing": ("GET", "/v1/territories", None, "karin.ek"),
    "sla-monitor": ("GET", "/v1/alerts", None, "ops.desk"),
    "feedback": ("GET", "/v1/review-board", None, "tom.weber"),
}

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]


def fast_sla_config(tmp_path: Path, notifications: dict[str, Any] | None = None) -> Path:
    rules = yaml.safe_load(EXAMPLE.read_text())
    rules["sla"] = {
        "handraiser": {"first_touch": "3s", "disposition": "1h"},
        "mql": {"first_touch": "1h", "disposition": "2h"},
    }
    if notifications is not None:
        rules["notifications"] = {**rules["notifications"], **notifications}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True))
    return path


@dataclass
class Notified:
    """Where the distributed run's notifications go: a CRM's webhook receiver and an SMTP server."""

    crm: HttpReceiver
    smtp: SmtpServer
    notifications: dict[str, Any]
    env: dict[str, str]
    secrets: list[str]


@pytest.fixture
def notified() -> Iterator[Notified]:
    secret = new_secret()
    crm = HttpReceiver(secret=secret)  # down (its port refuses connections) until after the breach
    password = secrets.token_urlsafe(12)
    smtp = SmtpServer(login=("leadrelay", password))
    smtp.start()
    events = ["lead.assigned", "sla.breached"]
    hook = {"id": "crm", "url": crm.url, "secret_env": "LEADRELAY_WEBHOOK_CRM_SECRET", "events": events}
    env = {
        "LEADRELAY_WEBHOOK_CRM_SECRET": secret,
        "LEADRELAY_SMTP_HOST": "127.0.0.1",
        "LEADRELAY_SMTP_PORT": str(smtp.port),
        "LEADRELAY_SMTP_TLS": "none",
        "LEADRELAY_SMTP_FROM": "Leadrelay <leadrelay@leadrelay.example>",
        "LEADRELAY_SMTP_USERNAME": "leadrelay",
        "LEADRELAY_SMTP_PASSWORD": password,
        "LEADRELAY_PUBLIC_BASE_URL": "https://leadrelay.example.com",
        "LEADRELAY_NOTIFY_BACKOFF_SECONDS": "0.2",
        "LEADRELAY_NOTIFY_BACKOFF_MAX_SECONDS": "1",
        "LEADRELAY_NOTIFY_POLL_SECONDS": "0.2",
    }
    try:
        yield Notified(crm, smtp, {"webhooks": [hook], "email": {"events": events}}, env, [secret, password])
    finally:
        smtp.stop()


def test_end_to_end_on_kafka_and_postgres(
    tmp_path: Path, pg_url: str, kafka_bootstrap: str, unique: str, pg_schema_cleanup: str, notified: Notified
) -> None:
    prefix = pg_schema_cleanup.rstrip("_")
    asyncio.run(create_topics(kafka_bootstrap, all_topics(), prefix=f"{prefix}."))
    config = fast_sla_config(tmp_path, notified.notifications)
    with cluster(tmp_path, pg_url, kafka_bootstrap, prefix, config, **notified.env) as c:
        started = time.monotonic()
        r = c.post(
            "intake",
            "/v1/forms/demo-request/submissions",
            json={
                "email": "jan.bakker@bakker-logistiek-test.nl",
                "first_name": "Jan",
                "last_name": "Bakker",
                "company": "Bakker Logistiek B.V.",
                "job_title": "Directeur",
                "country": "NL",
                "phone": "+31 20 123 4567",
            },
        )
        assert r.status_code == 202, r.text
        lead = r.json()["lead_id"]

        score = c.wait_for("scoring", f"/v1/leads/{lead}/score", status="handraiser")
        assert score["qualified"] is True
        assignment = c.wait_for("routing", f"/v1/leads/{lead}/assignment")
        assert assignment["territory"] == "benelux"
        assert assignment["handoff"]["contact"]["company"] == "Bakker Logistiek B.V."
        print(f"form to assignment on Kafka: {time.monotonic() - started:.2f}s")
        sla = c.wait_for("sla-monitor", f"/v1/leads/{lead}/sla")
        assert {k["name"]: k["status"] for k in sla["clocks"]} == {"first_touch": "running", "disposition": "running"}

        # First-touch deadline is 3 s: the alert fires, once.
        deadline = time.monotonic() + 30
        while not c.get("sla-monitor", f"/v1/leads/{lead}/sla").json()["alerts"]:
            assert time.monotonic() < deadline, c.tail("sla-monitor")
            time.sleep(0.2)
        time.sleep(1.0)
        sla = c.get("sla-monitor", f"/v1/leads/{lead}/sla").json()
        assert [a["clock"] for a in sla["alerts"]] == ["first_touch"]

        rep = assignment["rep_id"]
        # The rep's own queue, from the SLA monitor: the lead, its deadline already missed.
        queue = c.get("sla-monitor", "/v1/me/leads", as_=rep).json()
        assert [(q["lead_id"], q["next_deadline"]["status"]) for q in queue] == [(lead, "breached")]
        assert c.get("sla-monitor", "/v1/me/leads", as_="astrid.lindqvist").json() == []
        check_notifications(c, notified, lead, rep)

        # The rep signs in; feedback learns of the assignment from Kafka, and until then a rep
        # may not touch a lead feedback does not know as theirs.
        deadline = time.monotonic() + 30
        while (r := c.post("feedback", f"/v1/leads/{lead}/touches", as_=rep, json={"channel": "call"})).status_code in (
            403,
            404,
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert r.status_code == 202, r.text
        r = c.post("feedback", f"/v1/leads/{lead}/dispositions", as_=rep, json={"disposition": "accepted"})
        assert r.status_code == 202, r.text
        logged = c.get("feedback", f"/v1/leads/{lead}/feedback", as_="karin.ek").json()
        assert [t["logged_by"]["id"] for t in logged["touches"]] == [rep]
        assert c.get("feedback", f"/v1/leads/{lead}/feedback", as_="tom.weber").status_code == 403
        deadline = time.monotonic() + 30
        while True:
            clocks = {k["name"]: k["status"] for k in c.get("sla-monitor", f"/v1/leads/{lead}/sla").json()["clocks"]}
            if clocks == {"first_touch": "breached", "disposition": "met"}:
                break
            assert time.monotonic() < deadline, clocks
            time.sleep(0.2)
        c.wait_for("scoring", f"/v1/leads/{lead}/score", status="accepted")

        # A poison record on leads.intake goes to leads.intake.dlq; the next lead still flows.
        async def poison() -> None:
            bus = KafkaBus(kafka_bootstrap, client_id=unique, prefix=f"{prefix}.")
            await bus.start()
            try:
                await bus.publish([Record(topic=LEADS_INTAKE, key=lead.encode(), value=b"\xff not json")])
            finally:
                await bus.stop()

        asyncio.run(poison())
        r = c.post(
            "intake", "/v1/forms/demo-request/submissions", json={"email": "wang.fang@example-test.cn", "country": "CN"}
        )
        assert r.status_code == 202
        second = c.wait_for("routing", f"/v1/leads/{r.json()['lead_id']}/assignment")
        assert second["territory"] == "greater-china"

        async def read_dlq() -> list[Record]:
            bus = KafkaBus(kafka_bootstrap, client_id=unique, prefix=f"{prefix}.")
            consumer = bus.consumer("dlq-reader", [dlq_topic(LEADS_INTAKE)])
            await consumer.start()
            try:
                got: list[Record] = []
                end = time.monotonic() + 20
                while not got and time.monotonic() < end:
                    got = await consumer.getmany(10, 500)
                return got
            finally:
                await consumer.stop()

        dead = asyncio.run(read_dlq())
        assert len(dead) == 1
        assert "undecodable" in (dead[0].header("dlq_error") or "")
        assert dead[0].header("dlq_group") == "scoring"
        for service in ("intake", "scoring", "routing", "sla-monitor", "feedback"):
            assert c.get(service, "/readyz", as_=None).status_code == 200, c.get(service, "/readyz").text

        # Each service verifies credentials itself: 401 without one, with an expired token or one
        # signed with a key it does not know; 2xx with a good one; /metrics for the scraper.
        ops = example_rules().person("ops.desk")
        assert ops is not None
        expired = Tokens(SIGNING_KEY).issue(ops, timedelta(minutes=1), datetime.now(UTC) - timedelta(hours=1))
        stranger = Tokens(generate_key()).issue(ops)
        for service, (method, path, body, who) in PROTECTED.items():
            url = c.url(service) + path
            for headers in ({}, bearer(expired), bearer(stranger), {"X-API-Key": generate_key()}):
                r = httpx.request(method, url, json=body, headers=headers, timeout=10)
                assert r.status_code == 401, (service, r.status_code, r.text)
                assert r.headers["www-authenticate"].startswith("Bearer")
            r = httpx.request(method, url, json=body, headers=c.credential(who), timeout=10)
            assert r.status_code in (200, 202), (service, who, r.text)
            assert c.get(service, "/metrics", as_=None).status_code == 401
            metrics = c.get(service, "/metrics", as_="prometheus")
            assert metrics.status_code == 200 and "leadrelay_" in metrics.text

        # SIGTERM: each service finishes its batch, drains its outbox and stops cleanly
        # (uvicorn re-raises the signal once shutdown is complete, hence -SIGTERM).
        for service in list(c.procs):
            code = c.stop(service, signal.SIGTERM)
            assert code in (0, -signal.SIGTERM), c.tail(service)
            assert '"event": "runtime_stopped"' in c.tail(service, 5), c.tail(service)

        # No credential any caller sent (tokens, API keys) nor the signing key in any log.
        logs = "".join(p.read_text(errors="replace") for p in c.logs.glob("*.log"))
        assert '"event": "unauthenticated"' in logs
        assert len(c.sent) > 10
        for secret in [*c.sent, SIGNING_KEY, expired, stranger]:
            assert secret not in logs and secret.split(".")[-1] not in logs, "a credential was logged"


def wait_until(check: Callable[[], bool], what: str, c: Cluster, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{c.tail('sla-monitor')}"
        time.sleep(0.2)


def crm_deliveries(c: Cluster) -> list[dict[str, Any]]:
    r = c.get("sla-monitor", "/v1/notifications/deliveries?endpoint=webhook:crm")
    assert r.status_code == 200, r.text
    return list(r.json())


def check_notifications(c: Cluster, n: Notified, lead: str, rep: str) -> None:
    """The CRM was down through the handoff and the breach: both wait, then arrive once each."""
    crm, smtp = n.crm, n.smtp

    def waiting_with_errors() -> bool:
        log = crm_deliveries(c)
        return len(log) == 2 and all(
            d["status"] == "pending" and (d["last_error"] or "").startswith("connection failed") for d in log
        )

    wait_until(waiting_with_errors, "attempts against the CRM while it is down", c)
    crm.status = 500
    with serve_in_thread(crm):
        ids = {d["webhook_id"] for d in crm_deliveries(c)}
        wait_until(lambda: {r.headers["webhook-id"] for r in crm.requests} == ids, "the 500s", c)
        crm.status = 200
        wait_until(lambda: {d["status"] for d in crm_deliveries(c)} == {"delivered"}, "delivery to the CRM", c)
        time.sleep(1.5)  # several polls and backoff periods: nothing more may arrive
    accepted = Counter(r.headers["webhook-id"] for r in crm.accepted())
    assert sorted(accepted) == sorted(ids) and set(accepted.values()) == {1}, accepted
    assert crm.errors == [], crm.errors  # every request verified with the standardwebhooks library
    bodies = {r.json()["type"]: r.json()["data"] for r in crm.accepted()}
    assert bodies["lead.assigned"]["lead_id"] == lead and bodies["lead.assigned"]["rep"]["id"] == rep
    assert bodies["lead.assigned"]["link"] == f"https://leadrelay.example.com/leads/{lead}"
    assert bodies["sla.breached"]["clock"] == "first_touch"
    assert [m["id"] for m in bodies["sla.breached"]["managers"]] == ["karin.ek"]

    # E-mail: the rep hears of the lead and of the breach, their manager (Karin Ek, Benelux) of the breach.
    rep_email = f"{rep}@leadrelay.example"
    wait_until(lambda: len(smtp.to(rep_email)) == 2 and len(smtp.to("karin.ek@leadrelay.example")) == 1, "e-mails", c)
    subjects = sorted(m.message["Subject"] for m in smtp.to(rep_email))
    assert subjects[0].startswith("New lead for you: Jan Bakker (Bakker Logistiek B.V.)"), subjects
    assert subjects[1].startswith("SLA missed: first touch on Jan Bakker"), subjects
    assert smtp.logins and all(ok for _user, ok in smtp.logins)

    # No secret in the process's logs.
    log = (c.logs / "sla-monitor.log").read_text(errors="replace")
    assert "notification_delivered" in log and "notification_retry" in log
    for secret in [*n.secrets, n.secrets[0].removeprefix("whsec_")]:
        assert secret not in log, "a secret reached the logs"
