"""Dependencies taken away, on real Kafka and PostgreSQL: honest 503s and a front door that stays open.

- **PostgreSQL stopped**: every service's routes that need the database answer 503 within seconds,
  with ``Retry-After`` and a body naming ``postgresql``; never a 500, never a hang. A service
  restarted meanwhile starts, answers the same, and becomes ready once the database is back;
  then every route recovers. Intake keeps accepting (the broker stores the events).
- **Kafka stopped**: intake answers 202 fast (p99 under a second) for forms and behaviour
  events, from its spool; a restarted intake does too; the other services keep answering.
  Once the broker is back every accepted event reaches scoring: each lead assigned once, its
  events handled once each and in the order they were sent.
- **Both stopped**: intake answers 503 at once, naming both.

These stop and start the broker and the database, so they run only with
LEADRELAY_TEST_RESTART_INFRA=1, against instances of their own (`make test` starts them; by hand,
set KAFKA_PORT, KAFKA_CONTROLLER_PORT and PG_PORT to ports of instances only you use).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from leadrelay.bus.kafka import create_topics
from leadrelay.events import LEADS_INTAKE, Envelope, all_topics
from tests.e2e.chaos import Kafka
from tests.e2e.distributed import Cluster, cluster
from tests.harness import EXAMPLE

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
QUICK = 5.0  # a 503 must come within this many seconds
SERVICES = ("intake", "scoring", "routing", "sla-monitor", "feedback")


@pytest.fixture
def restartable_infra() -> None:
    if os.environ.get("LEADRELAY_TEST_RESTART_INFRA") != "1":
        pytest.skip("stops the local Kafka and PostgreSQL: set LEADRELAY_TEST_RESTART_INFRA=1 (make test does)")


async def on_a_cluster(
    body: Callable[[Path, str, str, str], None], tmp_path: Path, pg_url: str, kafka_bootstrap: str, schema: str
) -> None:
    """The test's topics, then its body (which starts processes and stops servers: blocking) in a thread."""
    await create_topics(kafka_bootstrap, all_topics(), prefix=f"{schema.rstrip('_')}.")
    await asyncio.to_thread(body, tmp_path, pg_url, kafka_bootstrap, schema)


def script(name: str, action: str) -> None:
    subprocess.run([str(ROOT / "deploy" / name), action], check=True, capture_output=True, timeout=180)  # noqa: S603


@contextmanager
def stopped(*names: str) -> Iterator[None]:
    """Stop ``kafka.sh`` and/or ``postgres.sh`` for the block; start them again whatever happens."""
    try:
        for name in names:
            script(name, "stop")
        yield
    finally:
        for name in names:
            script(name, "start")


def email(i: int) -> str:
    return f"outage{i}@nordvik{i % 7}-test.se"


def submit(c: Cluster, i: int) -> httpx.Response:
    form = {"email": email(i), "first_name": f"Out{i}", "country": "SE", "job_title": "Head of IT"}
    return c.post(
        "intake", "/v1/forms/demo-request/submissions", as_=None, json=form, headers={"Idempotency-Key": f"f{i}"}
    )


def behaviour(c: Cluster, i: int, step: int) -> httpx.Response:
    body = {
        "type": "page_viewed",
        "email": email(i),
        "url": f"https://x.example/{step}",
        "properties": {"title": f"step-{step}"},
        "message_id": f"e{i}-{step}",
    }
    return c.post("intake", "/v1/events", as_="website-tracking", json=body)


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    r = call()
    return r, time.monotonic() - t0


def assert_unavailable(r: httpx.Response, took: float, dependency: str, what: str) -> None:
    assert r.status_code == 503, f"{what}: {r.status_code} {r.text}"
    assert took < QUICK, f"{what}: 503 after {took:.1f}s"
    assert int(r.headers["retry-after"]) > 0, what
    assert r.json()["dependency"] == dependency, f"{what}: {r.text}"


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, f"{what} not within {timeout}s"
        time.sleep(0.2)
    return time.monotonic() - t0


def database_routes(lead: str) -> dict[str, list[tuple[str, str, dict[str, object] | None]]]:
    """For each service with a database: (method, path, JSON body) of routes that read or write it."""
    return {
        "scoring": [("GET", "/v1/leads", None), ("GET", f"/v1/leads/{lead}/score", None)],
        "routing": [
            ("GET", f"/v1/leads/{lead}/assignment", None),
            ("GET", "/v1/suppressions", None),
            ("PUT", "/v1/reps/astrid.lindqvist/availability", {"status": "available"}),
        ],
        "sla-monitor": [
            ("GET", f"/v1/leads/{lead}/sla", None),
            ("GET", "/v1/alerts", None),
            ("GET", "/v1/metrics/sla", None),
        ],
        "feedback": [
            ("POST", f"/v1/leads/{lead}/touches", {"channel": "call", "note": "during the outage"}),
            ("GET", f"/v1/leads/{lead}/feedback", None),
            ("GET", "/v1/metrics/funnel", None),
        ],
    }


def call(c: Cluster, service: str, method: str, path: str, body: dict[str, object] | None) -> httpx.Response:
    return httpx.request(method, c.url(service) + path, json=body, headers=c.credential("ops.desk"), timeout=30)


def rows(pg_url: str, sql: str) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()

    return asyncio.run(fetch())


def first_lead(c: Cluster) -> str:
    r = submit(c, 0)
    assert r.status_code == 202, r.text
    lead = str(r.json()["lead_id"])
    c.wait_for("routing", f"/v1/leads/{lead}/assignment", timeout=60)
    return lead


async def test_postgres_down_every_service_answers_503_quickly_and_recovers(
    tmp_path: Path, pg_url: str, kafka_bootstrap: str, pg_schema_cleanup: str, restartable_infra: None
) -> None:
    await on_a_cluster(
        _postgres_down_every_service_answers_503_quickly_and_recovers,
        tmp_path,
        pg_url,
        kafka_bootstrap,
        pg_schema_cleanup,
    )


def _postgres_down_every_service_answers_503_quickly_and_recovers(
    tmp_path: Path, pg_url: str, kafka_bootstrap: str, pg_schema_cleanup: str
) -> None:
    prefix = pg_schema_cleanup.rstrip("_")
    with cluster(tmp_path, pg_url, kafka_bootstrap, prefix, EXAMPLE, services=SERVICES) as c:
        lead = first_lead(c)
        routes = database_routes(lead)
        with stopped("postgres.sh"):
            for service, calls in routes.items():
                for method, path, body in calls:
                    r, took = timed(lambda: call(c, service, method, path, body))  # noqa: B023
                    assert_unavailable(r, took, "postgresql", f"{service} {method} {path}")
                ready = httpx.get(c.url(service) + "/readyz", timeout=10)
                assert ready.status_code == 503, f"{service} ready with its database down"
            # A service started while its database is down starts, answers 503 and says why.
            c.stop("feedback")
            c.start("feedback")
            wait_until(lambda: _answers(c, "feedback"), 60, "feedback started without its database")
            r, took = timed(lambda: call(c, "feedback", "GET", f"/v1/leads/{lead}/feedback", None))
            assert_unavailable(r, took, "postgresql", "feedback started without its database")
            assert httpx.get(c.url("feedback") + "/readyz", timeout=10).status_code == 503
            # Intake still takes forms: the broker stores them.
            r, took = timed(lambda: submit(c, 1))
            assert r.status_code == 202 and took < QUICK, (r.status_code, r.text, took)
        # Back: everything recovers on its own.
        c.wait_ready(list(SERVICES), timeout=90)
        for service, calls in routes.items():
            for method, path, body in calls:
                wait_until(
                    lambda: call(c, service, method, path, body).status_code < 300,  # noqa: B023
                    30,
                    f"{service} {method} {path} recovered",
                )
        c.wait_for("routing", f"/v1/leads/{r.json()['lead_id']}/assignment", timeout=60)


def _answers(c: Cluster, service: str) -> bool:
    try:
        httpx.get(c.url(service) + "/livez", timeout=2)
        return True
    except httpx.HTTPError:
        return False


async def test_broker_down_intake_accepts_fast_and_delivers_everything_in_order_once_back(
    tmp_path: Path, pg_url: str, kafka_bootstrap: str, pg_schema_cleanup: str, restartable_infra: None
) -> None:
    await on_a_cluster(
        _broker_down_intake_accepts_fast_and_delivers_everything_in_order_once_back,
        tmp_path,
        pg_url,
        kafka_bootstrap,
        pg_schema_cleanup,
    )


def _broker_down_intake_accepts_fast_and_delivers_everything_in_order_once_back(
    tmp_path: Path, pg_url: str, kafka_bootstrap: str, pg_schema_cleanup: str
) -> None:
    prefix = pg_schema_cleanup.rstrip("_")
    leads = 30
    with cluster(tmp_path, pg_url, kafka_bootstrap, prefix, EXAMPLE, services=SERVICES) as c:
        lead = first_lead(c)
        accepted: dict[str, int] = {}
        latencies: list[float] = []
        with stopped("kafka.sh"):
            # Forms and behaviour events while the broker is down; intake restarted half-way.
            for i in range(1, leads + 1):
                if i == leads // 2:
                    c.stop("intake")
                    c.start("intake")
                    c.wait_ready(["intake"], timeout=60)  # ready: the spool takes the events
                r, took = timed(lambda: submit(c, i))  # noqa: B023
                assert r.status_code == 202, r.text
                latencies.append(took)
                accepted[r.json()["lead_id"]] = 0
                for step in range(1, 4):
                    e, took = timed(lambda: behaviour(c, i, step))  # noqa: B023
                    assert e.status_code == 202, e.text
                    latencies.append(took)
                    accepted[r.json()["lead_id"]] = step
            latencies.sort()
            p99 = latencies[int(len(latencies) * 0.99) - 1]
            print(
                f"\nbroker down: {len(latencies)} events accepted, p50 {latencies[len(latencies) // 2]:.3f}s, p99 {p99:.3f}s"
            )
            metrics = c.get("intake", "/metrics", as_="ops.desk").text
            depth = [ln for ln in metrics.splitlines() if ln.startswith("leadrelay_intake_spool_depth ")]
            assert depth and float(depth[0].split()[1]) > 0, depth
            # The other services keep answering what needs no broker.
            for service, calls in database_routes(lead).items():
                for method, path, body in calls:
                    r, took = timed(lambda: call(c, service, method, path, body))  # noqa: B023
                    assert r.status_code < 300 and took < QUICK, (service, method, path, r.status_code, took)
        # Back: every accepted event reaches scoring, in order, once; every lead is assigned once.
        c.wait_ready(list(SERVICES), timeout=120)
        s = pg_schema_cleanup

        def delivered() -> bool:
            n = rows(pg_url, f'SELECT count(*) AS n FROM "{s}routing".assignments')[0]["n"]
            spooled = rows(pg_url, f'SELECT count(*) AS n FROM "{s}intake".outbox')[0]["n"]
            return bool(n == leads + 1 and spooled == 0)

        took = wait_until(delivered, 120, "every spooled lead assigned")
        print(f"every spooled event delivered and every lead assigned {took:.1f}s after the broker was back")
        time.sleep(3)  # anything doubled would show by now
        assignments = Counter(r["lead_id"] for r in rows(pg_url, f'SELECT lead_id FROM "{s}routing".assignments'))
        activities: dict[str, list[str]] = defaultdict(list)
        for r in rows(pg_url, f'SELECT lead_id, detail FROM "{s}scoring".activities ORDER BY id'):
            activities[r["lead_id"]].append(r["detail"])
        for lead_id, steps in accepted.items():
            assert assignments[lead_id] == 1, f"{lead_id}: {assignments[lead_id]} assignments"
            expected = ["demo-request"] + [f"step-{n}" for n in range(1, steps + 1)]
            assert activities[lead_id] == expected, f"{lead_id}: handled {activities[lead_id]}, sent {expected}"
        # The figure is printed above; the bound only catches a form held up by the broker's timeouts.
        assert latencies[-1] < QUICK, latencies[-5:]


async def test_broker_and_spool_down_intake_answers_503_at_once(
    tmp_path: Path, pg_url: str, kafka_bootstrap: str, pg_schema_cleanup: str, restartable_infra: None
) -> None:
    await on_a_cluster(
        _broker_and_spool_down_intake_answers_503_at_once, tmp_path, pg_url, kafka_bootstrap, pg_schema_cleanup
    )


def _broker_and_spool_down_intake_answers_503_at_once(
    tmp_path: Path, pg_url: str, kafka_bootstrap: str, pg_schema_cleanup: str
) -> None:
    prefix = pg_schema_cleanup.rstrip("_")
    with cluster(tmp_path, pg_url, kafka_bootstrap, prefix, EXAMPLE, services=("intake",)) as c:
        assert submit(c, 0).status_code == 202
        with stopped("kafka.sh", "postgres.sh"):
            for i in range(1, 4):
                r, took = timed(lambda: submit(c, i))  # noqa: B023
                assert_unavailable(r, took, "kafka,postgresql", "a form with neither broker nor spool")
                assert took < 2.5, took  # at once, with nothing left to wait for
                r, took = timed(lambda: behaviour(c, i, 1))  # noqa: B023
                assert_unavailable(r, took, "kafka,postgresql", "an event with neither broker nor spool")
            assert httpx.get(c.url("intake") + "/readyz", timeout=10).status_code == 503
        c.wait_ready(["intake"], timeout=90)
        wait_until(lambda: submit(c, 9).status_code == 202, 60, "intake accepting again")


async def test_events_accepted_while_the_spool_drains_reach_scoring_in_order(
    tmp_path: Path, pg_url: str, kafka_bootstrap: str, pg_schema_cleanup: str, restartable_infra: None
) -> None:
    """Issue 24 on real Kafka and PostgreSQL: the broker is stopped, a lead's events are spooled; the
    broker returns, and while the spool drains, new events for that lead and for others arrive. They
    go behind the spooled ones (``Spool.put_if_waiting``): every lead's events are on leads.intake,
    and handled by scoring, in the order intake accepted them.

    "While the spool drains" is held open on purpose: the test holds the advisory lock the outbox
    relay takes per schema (``leadrelay.outbox._lock``), as another intake replica in the middle of
    a drain would. Released once the new events are accepted, intake's own relay drains the spool."""
    s = pg_schema_cleanup
    await create_topics(kafka_bootstrap, all_topics(), prefix=f"{s.rstrip('_')}.")
    lock = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    loop = asyncio.get_running_loop()
    key = f"outbox:{s}intake"

    def release_relay_lock() -> None:
        coro = lock.fetchval("SELECT pg_advisory_unlock(hashtext($1))", key)
        assert asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30) is True

    try:
        await lock.execute("SELECT pg_advisory_lock(hashtext($1))", key)
        await asyncio.to_thread(
            _events_accepted_while_the_spool_drains_reach_scoring_in_order,
            tmp_path,
            pg_url,
            kafka_bootstrap,
            s,
            release_relay_lock,
        )
    finally:
        await lock.close()


def _events_accepted_while_the_spool_drains_reach_scoring_in_order(
    tmp_path: Path, pg_url: str, kafka_bootstrap: str, s: str, release_relay_lock: Callable[[], None]
) -> None:
    prefix = s.rstrip("_")
    # Event ids and scoring's activity details of each lead, in the order intake accepted them.
    sent: dict[str, list[str]] = defaultdict(list)
    details: dict[str, list[str]] = defaultdict(list)

    def accept_form(c: Cluster, i: int) -> None:
        r = submit(c, i)
        assert r.status_code == 202, r.text
        sent[r.json()["lead_id"]].append(r.json()["event_id"])
        details[r.json()["lead_id"]].append("demo-request")

    def accept_event(c: Cluster, i: int, step: int) -> None:
        r = behaviour(c, i, step)
        assert r.status_code == 202, r.text
        sent[r.json()["lead_id"]].append(r.json()["event_id"])
        details[r.json()["lead_id"]].append(f"step-{step}")

    def bus_ok(c: Cluster) -> bool:
        try:
            r = httpx.get(c.url("intake") + "/readyz", timeout=5)
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and r.json()["checks"].get("bus") == "ok"

    # A direct publish has 3 s: once the broker is back, an event that is not held behind the spool
    # surely reaches the broker directly (so the test shows whether the rule holds it back).
    extra = {"LEADRELAY_INTAKE_DIRECT_TIMEOUT_MS": "3000"}
    with cluster(tmp_path, pg_url, kafka_bootstrap, prefix, EXAMPLE, services=("intake", "scoring"), **extra) as c:
        with stopped("kafka.sh"):
            accept_form(c, 101)
            accept_event(c, 101, 1)
            accept_event(c, 101, 2)
            accept_form(c, 102)
            # Restarted while the broker is gone: the direct publishes that gave up die with the
            # process, so all the broker will get of these events comes from the spool.
            c.stop("intake")
            c.start("intake")
            c.wait_ready(["intake"], timeout=60)
        wait_until(lambda: bus_ok(c), 120, "intake's producer connected to the broker again")
        spooled = rows(pg_url, f'SELECT count(*) AS n FROM "{s}intake".outbox')[0]["n"]
        assert spooled >= 4, f"{spooled} events in the spool"
        # The spool is draining: new events for the spooled leads and for new ones.
        accept_form(c, 103)
        accept_event(c, 101, 3)
        accept_event(c, 102, 1)
        accept_event(c, 103, 1)
        accept_event(c, 101, 4)
        accept_form(c, 104)
        accept_event(c, 102, 2)
        release_relay_lock()

        wait_until(
            lambda: rows(pg_url, f'SELECT count(*) AS n FROM "{s}intake".outbox')[0]["n"] == 0,
            60,
            "the spool drained",
        )
        records = asyncio.run(Kafka(kafka_bootstrap, f"{prefix}.").records(LEADS_INTAKE))
        on_topic: dict[str, list[str]] = defaultdict(list)
        for rec in records:
            env = Envelope.from_record(rec)
            if env.id not in on_topic[env.subject]:
                on_topic[env.subject].append(env.id)
        assert dict(on_topic) == dict(sent), "leads.intake: some lead's events out of the order accepted"

        def handled() -> dict[str, list[str]]:
            out: dict[str, list[str]] = defaultdict(list)
            for r in rows(pg_url, f'SELECT lead_id, detail FROM "{s}scoring".activities ORDER BY id'):
                out[r["lead_id"]].append(r["detail"])
            return out

        total = sum(len(d) for d in details.values())
        wait_until(lambda: sum(len(d) for d in handled().values()) >= total, 90, "scoring handled every event")
        assert dict(handled()) == dict(details), "scoring: some lead's events handled out of the order accepted"
