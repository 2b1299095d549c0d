"""Crash test on real Kafka and PostgreSQL: nothing lost, nothing doubled, order kept.

While a stream of leads flows (a handraiser form, then three behaviour events
sent in order), each consumer service is killed with SIGKILL at a random
moment and restarted (one at a time, then two at once), the Kafka broker is
restarted, and PostgreSQL is restarted. Then the broker is frozen (SIGSTOP: a
long pause or a network partition) until a consumer is caught having committed
work whose events it cannot publish, every consumer and the broker are killed
in that state, and all restart: those events must still go out (the outbox).
Then the SLA monitor is stopped while deadlines come due. Last, every consumer
group is rewound to the start of its topics and everything is consumed again
(a replay, as ops do after an incident): it must change nothing (the inbox).
Afterwards:

- every submission that got a 202 has exactly one assignment, exactly one
  clock of each kind, and at most one alert (and one alert event) per deadline;
- each lead's events were handled exactly once and in order, and each gave
  exactly one score event downstream (with the example rules every accepted
  event changes the score), in order;
- no consumer group has lag, no outbox has rows, no dead-letter topic has records;
- after the broker restarts every group consumes again within 60 s, and after a
  service restart its lag is back to zero within 30 s.

Bounded: about four minutes, loopback only, stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from leadrelay.bus.kafka import create_topics
from leadrelay.events import (
    LEADS_SCORED,
    SLA_ALERTS,
    TOPIC_PARTITIONS,
    Envelope,
    LeadScored,
    Record,
    all_topics,
    dlq_topic,
)
from leadrelay.runtime import load_services
from tests.e2e.distributed import Cluster, cluster
from tests.harness import EXAMPLE

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FIRST_TOUCH_SECONDS = 10
CONSUMERS = ("scoring", "routing", "sla-monitor", "feedback")
GROUP_TOPICS = {sub.group: list(sub.topics) for svc in load_services(CONSUMERS) for sub in svc.subscriptions}
COUNTRIES = ["SE", "NO", "DK", "FI", "DE", "AT", "CH", "NL", "BE", "LU", "CN", "HK", "TW", "US", "GB", "FR"]


def rules(tmp_path: Path) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["sla"]["handraiser"] = {"first_touch": f"{FIRST_TOUCH_SECONDS}s", "disposition": "2h"}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


class Kafka:
    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix

    async def _ends(self, topics: list[str]) -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await consumer.start()
        try:
            tps = [TopicPartition(self.prefix + t, p) for t in topics for p in range(all_topics()[t])]
            return dict(await consumer.end_offsets(tps))
        finally:
            await consumer.stop()

    async def committed(self, group: str) -> dict[TopicPartition, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(self.prefix + group)
            return {tp: meta.offset for tp, meta in offsets.items()}
        finally:
            await admin.close()

    async def rewind(self, group: str) -> None:
        """Commit offset 0 on every partition of the group's topics (the group must have no members)."""
        tps = [TopicPartition(self.prefix + t, p) for t in GROUP_TOPICS[group] for p in range(all_topics()[t])]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.prefix + group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.commit(dict.fromkeys(tps, 0))
        finally:
            await consumer.stop()

    async def lag(self, group: str) -> int:
        ends = await self._ends(GROUP_TOPICS[group])
        committed = await self.committed(group)
        return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())

    async def caught_up(self, groups: list[str], timeout: float) -> float:
        """Seconds until every group has committed what was on its topics when called."""
        started = time.monotonic()
        targets = {g: await self._ends(GROUP_TOPICS[g]) for g in groups}
        while True:
            behind = []
            for g, ends in targets.items():
                try:
                    committed = await self.committed(g)
                except Exception:
                    behind.append(g)
                    continue
                if any(committed.get(tp, 0) < end for tp, end in ends.items()):
                    behind.append(g)
            if not behind:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"groups {behind} did not catch up within {timeout}s")
            await asyncio.sleep(0.5)

    async def records(self, topic: str) -> list[Record]:
        ends = await self._ends([topic])
        if not any(ends.values()):
            return []
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            consumer.assign(list(ends))
            await consumer.seek_to_beginning(*ends)
            out: list[Record] = []
            deadline = time.monotonic() + 30
            while sum(1 for _ in out) < sum(ends.values()) and time.monotonic() < deadline:
                for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                    out.extend(
                        Record(
                            topic=topic,
                            key=m.key,
                            value=m.value or b"",
                            headers=tuple(m.headers),
                            partition=tp.partition,
                            offset=m.offset,
                        )
                        for m in msgs
                    )
            return out
        finally:
            await consumer.stop()


class Load:
    """Leads submitted over HTTP; each lead's events strictly after its form's 202, one at a time."""

    def __init__(self, c: Cluster, seed: int) -> None:
        self.c = c
        self.rng = random.Random(seed)
        self.accepted: dict[str, int] = {}  # lead id -> events accepted after the form
        self.failures = Counter[str]()
        self.client = httpx.AsyncClient(timeout=60)

    async def post(self, path: str, body: dict[str, Any], key: str) -> httpx.Response | None:
        # A client retries with the same key until it gets an answer; the inboxes drop duplicates.
        for _ in range(10):
            try:
                # Forms are public; behaviour events come from the tracking source with its API key.
                headers = {"Idempotency-Key": key, **self.c.credential("website-tracking")}
                r = await self.client.post(self.c.url("intake") + path, json=body, headers=headers)
                if r.status_code == 202:
                    return r
                self.failures[str(r.status_code)] += 1
            except httpx.HTTPError as exc:
                self.failures[type(exc).__name__] += 1
            await asyncio.sleep(0.5)
        return None

    async def lead(self, i: int) -> None:
        email = f"lead{i}@crash{i % 37}-test.example"
        form = {
            "email": email,
            "first_name": f"Lead{i}",
            "country": self.rng.choice(COUNTRIES),
            "job_title": "Head of IT",
            "company": f"Crash {i} AB",
        }
        r = await self.post("/v1/forms/demo-request/submissions", form, f"form-{i}")
        if r is None:
            return
        lead = r.json()["lead_id"]
        self.accepted[lead] = 0
        for step in range(1, 4):
            body = {
                "type": "page_viewed",
                "email": email,
                "url": f"https://leadrelay.example/p/{step}",
                "properties": {"title": f"step-{step}"},
                "message_id": f"ev-{i}-{step}",
            }
            if await self.post("/v1/events", body, f"ev-{i}-{step}") is None:
                return
            self.accepted[lead] = step

    async def run_until(self, done: asyncio.Event, per_second: float) -> None:
        """New leads at ``per_second`` until ``done`` is set; then wait for those in flight."""
        tasks = []
        n = 0
        t0 = time.monotonic()
        while not done.is_set():
            tasks.append(asyncio.create_task(self.lead(n)))
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), max(0.0, t0 + n / per_second - time.monotonic()))
        await asyncio.gather(*tasks)

    async def run(self, start: int, count: int, seconds: float) -> None:
        tasks = []
        t0 = time.monotonic()
        for n in range(count):
            delay = t0 + n * seconds / count - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.lead(start + n)))
        await asyncio.gather(*tasks)


async def restart_service(c: Cluster, k: Kafka, services: list[str], catch_up: dict[str, float]) -> None:
    for s in services:
        c.stop(s, signal.SIGKILL)
    await asyncio.sleep(random.uniform(0.5, 2.0))
    for s in services:
        c.start(s)
    await asyncio.to_thread(c.wait_ready, services)
    groups = [sub.group for svc in load_services(services) for sub in svc.subscriptions]
    took = await k.caught_up(groups, timeout=30)
    for s in services:
        catch_up[s] = max(catch_up.get(s, 0.0), took)


def script(name: str, action: str) -> str:
    done = subprocess.run(  # noqa: S603
        [str(ROOT / "deploy" / name), action], check=True, capture_output=True, text=True, timeout=180
    )
    return done.stdout


def wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"process {pid} still there after SIGKILL"
        time.sleep(0.1)


async def freeze_broker_then_crash(c: Cluster, k: Kafka, pg: str, schema_prefix: str, rng: random.Random) -> float:
    """Freeze the broker (SIGSTOP) until a consumer is caught having committed work while it was
    frozen: that work's events are committed to its database but cannot have reached the broker.
    Then SIGKILL every consumer and the broker, and restart them. Returns the seconds from the
    broker's restart until every group has consumed what was on its topics."""
    pid = int(script("kafka.sh", "pid").strip())
    conn = await asyncpg.connect(pg)
    activities = f'SELECT count(*) FROM "{schema_prefix}scoring".activities'
    freezes = 0
    try:
        while True:
            freezes += 1
            if freezes > 60:
                raise AssertionError("in 60 freezes of the broker no consumer committed work while it was frozen")
            os.kill(pid, signal.SIGSTOP)
            before = await conn.fetchval(activities)  # read after the freeze: nothing before it counts
            await asyncio.sleep(1.0)
            if await conn.fetchval(activities) > before:
                break
            os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(rng.uniform(0.2, 0.8))
    except BaseException:
        os.kill(pid, signal.SIGCONT)  # never leave the broker frozen for the tests that follow
        raise
    finally:
        await conn.close()
    print(f"\nscoring committed work with the broker frozen (freeze {freezes}); killing everything")
    for s in CONSUMERS:
        c.stop(s, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    await asyncio.to_thread(wait_gone, pid)
    await asyncio.to_thread(script, "kafka.sh", "start")
    return await start_consumers_until_caught_up(c, k, timeout=60)


async def replay_everything(c: Cluster, k: Kafka) -> float:
    """Stop the consumers, rewind every group to the start of its topics, start them again and
    wait until all is consumed a second time. Returns the seconds the replay took."""
    for s in CONSUMERS:
        c.stop(s)
    for group in GROUP_TOPICS:
        await k.rewind(group)
        assert await k.lag(group) > 0, f"{group} was not rewound"
    return await start_consumers_until_caught_up(c, k, timeout=120)


async def start_consumers_until_caught_up(c: Cluster, k: Kafka, timeout: float) -> float:
    """Start every consumer service; returns the seconds until all groups consumed what was there."""
    started = time.monotonic()
    for s in CONSUMERS:
        c.start(s)
    await asyncio.to_thread(c.wait_ready, list(CONSUMERS))
    await k.caught_up(list(GROUP_TOPICS), timeout=timeout)
    return time.monotonic() - started


@pytest.fixture
def restartable_infra() -> None:
    if os.environ.get("LEADRELAY_TEST_RESTART_INFRA") != "1":
        pytest.skip("restarts the local Kafka and PostgreSQL: set LEADRELAY_TEST_RESTART_INFRA=1 (make test does)")


async def test_crashes_and_restarts_lose_and_double_nothing(
    tmp_path: Path, pg_url: str, kafka_bootstrap: str, pg_schema_cleanup: str, restartable_infra: None
) -> None:
    prefix = pg_schema_cleanup.rstrip("_")
    await create_topics(kafka_bootstrap, all_topics(), prefix=f"{prefix}.")
    k = Kafka(kafka_bootstrap, f"{prefix}.")
    rng = random.Random(int(time.time()))
    catch_up: dict[str, float] = {}
    with cluster(tmp_path, pg_url, kafka_bootstrap, prefix, rules(tmp_path)) as c:
        load = Load(c, seed=rng.randrange(1 << 30))

        async def chaos() -> dict[str, float]:
            await asyncio.sleep(2)
            figures: dict[str, float] = {}
            plan: list[list[str]] = [[s] for s in CONSUMERS] + [rng.sample(CONSUMERS, 2)]
            for services in plan:
                await asyncio.sleep(rng.uniform(2.0, 5.0))
                await restart_service(c, k, services, catch_up)
            await asyncio.sleep(2)
            script("kafka.sh", "restart")
            await asyncio.sleep(3)  # let post-restart records pile up: the groups must consume them
            figures["kafka_restart_catch_up"] = await k.caught_up(list(GROUP_TOPICS), timeout=60)
            await asyncio.sleep(2)
            script("postgres.sh", "restart")
            figures["postgres_restart_catch_up"] = await k.caught_up(list(GROUP_TOPICS), timeout=60)
            await asyncio.sleep(2)
            figures["frozen_broker_crash_catch_up"] = await freeze_broker_then_crash(
                c, k, pg_url.replace("postgresql+asyncpg://", "postgresql://"), pg_schema_cleanup, rng
            )
            await asyncio.sleep(2)
            return figures

        done = asyncio.Event()
        load_task = asyncio.create_task(load.run_until(done, per_second=4.5))
        try:
            figures = await chaos()
        finally:
            done.set()
            await load_task

        # The SLA monitor is down while first-touch deadlines come due.
        c.stop("sla-monitor", signal.SIGKILL)
        await load.run(1000, 20, 3)
        await asyncio.sleep(FIRST_TOUCH_SECONDS + 3)
        c.start("sla-monitor")
        await asyncio.to_thread(c.wait_ready, ["sla-monitor"])
        await asyncio.sleep(FIRST_TOUCH_SECONDS + 2)  # every clock is now overdue
        await k.caught_up(list(GROUP_TOPICS), timeout=60)
        await asyncio.sleep(2)  # the SLA timer's last tick and the outbox relays
        await load.client.aclose()
        figures["replay"] = await replay_everything(c, k)
        await asyncio.sleep(2)

        print(f"\naccepted leads: {len(load.accepted)}; client retries: {dict(load.failures)}")
        print(f"catch-up after SIGKILL+restart (s): {catch_up}; infra: {figures}")
        assert len(load.accepted) >= 200, (len(load.accepted), load.failures)
        assert all(v <= 30 for v in catch_up.values()), catch_up
        assert figures["kafka_restart_catch_up"] <= 60 and figures["frozen_broker_crash_catch_up"] <= 60, figures
        for group in GROUP_TOPICS:
            assert await k.lag(group) == 0, f"{group} left events unprocessed"

        conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            for svc in CONSUMERS:
                schema = f"{pg_schema_cleanup}{svc.replace('-', '_')}"
                left = await conn.fetchval(f'SELECT count(*) FROM "{schema}".outbox')
                assert left == 0, f"{svc} outbox still holds {left} events"
            s = pg_schema_cleanup
            assignments = Counter(
                r["lead_id"] for r in await conn.fetch(f'SELECT lead_id FROM "{s}routing".assignments')
            )
            clocks = Counter(
                (r["lead_id"], r["name"])
                for r in await conn.fetch(f'SELECT lead_id, name FROM "{s}sla_monitor".clocks')
            )
            overdue = await conn.fetch(f'SELECT id, lead_id, status FROM "{s}sla_monitor".clocks WHERE due_at < now()')
            alerts = Counter(
                (r["lead_id"], r["clock"])
                for r in await conn.fetch(f'SELECT lead_id, clock FROM "{s}sla_monitor".alerts')
            )
            activities: dict[str, list[str]] = defaultdict(list)
            for r in await conn.fetch(f'SELECT lead_id, detail FROM "{s}scoring".activities ORDER BY id'):
                activities[r["lead_id"]].append(r["detail"])
            handed = {r["lead_id"] for r in await conn.fetch(f'SELECT lead_id FROM "{s}feedback".handed_over')}
        finally:
            await conn.close()

        for lead, steps in load.accepted.items():
            assert assignments[lead] == 1, f"{lead}: {assignments[lead]} assignments"
            kinds = (clocks[(lead, "first_touch")], clocks[(lead, "disposition")])
            assert kinds == (1, 1), f"{lead}: {kinds} first-touch and disposition clocks"
            assert lead in handed, f"feedback never learnt of {lead}"
            expected = ["demo-request"] + [f"step-{n}" for n in range(1, steps + 1)]
            assert activities[lead] == expected, f"{lead}: handled {activities[lead]}, sent {expected}"
        assert set(assignments) == set(load.accepted), "an assignment for a lead nobody submitted"
        # Downstream: one score event per accepted event (a relay may repeat an event id, never lose
        # or invent one), scores rising in the order the events were sent.
        scored: dict[str, dict[str, int]] = defaultdict(dict)  # lead -> event id -> score, first seen
        for rec in await k.records(LEADS_SCORED):
            env = Envelope.from_record(rec)
            if isinstance(env.data, LeadScored):
                scored[env.subject].setdefault(env.id, env.data.score)
        for lead, steps in load.accepted.items():
            scores = list(scored[lead].values())
            assert len(scores) == 1 + steps, f"{lead}: {len(scores)} score events for {1 + steps} events"
            assert scores == sorted(set(scores)), f"{lead}: scores out of order {scores}"
        assert all(n <= 1 for n in alerts.values()), [k for k, n in alerts.items() if n > 1]
        # Every overdue first-touch deadline (nobody touched these leads) fired exactly once.
        assert all(r["status"] == "breached" for r in overdue)
        assert {(r["lead_id"]) for r in overdue} == set(load.accepted)
        assert sum(alerts.values()) == len(overdue)
        # Alert events: one event id per deadline (a relay may repeat an event, never invent a second one).
        events = [Envelope.from_record(r) for r in await k.records(SLA_ALERTS)]
        ids_per_deadline: dict[tuple[str, str], set[str]] = defaultdict(set)
        for e in events:
            ids_per_deadline[(e.subject, e.data.clock)].add(e.id)  # type: ignore[attr-defined]
        assert set(ids_per_deadline) == set(alerts)
        assert all(len(ids) == 1 for ids in ids_per_deadline.values())
        for topic in TOPIC_PARTITIONS:
            dead = await k.records(dlq_topic(topic))
            assert dead == [], [(r.header("dlq_group"), r.header("dlq_error")) for r in dead]
