"""What the fault tests and the soak run share: a load of leads over HTTP, readers of the Kafka
topics and consumer groups, service and infrastructure restarts, and the invariants checked
over every accepted lead afterwards (``check``).

The invariants, for every submission that got a 202:

- exactly one assignment, exactly one clock of each kind, feedback learnt of it;
- its events were handled exactly once and in the order they were sent, and each gave exactly
  one score event downstream (with the example rules every accepted event changes the score),
  scores rising in that order;
- at most one alert (and one alert event id) per deadline, and every overdue first-touch
  deadline fired exactly once;
- no consumer group has lag, no outbox has rows, no dead-letter topic has records.

``check`` counts the leads that break them (lost, doubled, out of order) instead of stopping at
the first, so that the soak run can report figures; the tests assert that the verdict is clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

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
from tests.e2e.distributed import Cluster
from tests.harness import EXAMPLE

ROOT = Path(__file__).resolve().parents[2]
CONSUMERS = ("scoring", "routing", "sla-monitor", "feedback")
GROUP_TOPICS = {sub.group: list(sub.topics) for svc in load_services(CONSUMERS) for sub in svc.subscriptions}
COUNTRIES = ["SE", "NO", "DK", "FI", "DE", "AT", "CH", "NL", "BE", "LU", "CN", "HK", "TW", "US", "GB", "FR"]


def rules(tmp_path: Path, first_touch_seconds: int) -> Path:
    """The example rules with a short first-touch deadline for handraisers (so that deadlines
    come due during the run)."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["sla"]["handraiser"] = {"first_touch": f"{first_touch_seconds}s", "disposition": "2h"}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def dsn(pg_url: str) -> str:
    """asyncpg's form of the SQLAlchemy URL."""
    return pg_url.replace("postgresql+asyncpg://", "postgresql://")


class Kafka:
    """Reads the topics and the consumer groups of one prefix, straight from the broker."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix

    async def _ends(self, topics: list[str]) -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        try:
            await consumer.start()
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
        targets: dict[str, dict[TopicPartition, int]] = {}
        while len(targets) < len(groups):  # the broker may be on its way back
            try:
                targets.update({g: await self._ends(GROUP_TOPICS[g]) for g in groups if g not in targets})
            except Exception:
                if time.monotonic() - started > timeout:
                    raise
                await asyncio.sleep(0.5)
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
        total = sum(ends.values())
        if not total:
            return []
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 << 20,
        )
        await consumer.start()
        try:
            consumer.assign(list(ends))
            await consumer.seek_to_beginning(*ends)
            out: list[Record] = []
            deadline = time.monotonic() + 30 + total / 500
            while len(out) < total and time.monotonic() < deadline:
                for tp, msgs in (await consumer.getmany(timeout_ms=500, max_records=5000)).items():
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


# Requests a load client has in flight at most (the others wait for a slot).
IN_FLIGHT = 400


class Load:
    """Leads submitted over HTTP; each lead's events strictly after its form's 202, one at a time.

    A client retries with the same idempotency key until it gets a 202 (a 503 while a dependency
    is down, a timeout, a reset connection), at most ``attempts`` times ``pause`` seconds apart;
    the inboxes drop duplicates. A lead counts as accepted only on its form's 202, and each of
    its events only on their 202 (the events stop at the first that is given up on)."""

    def __init__(self, c: Cluster, seed: int, attempts: int = 10, pause: float = 0.5) -> None:
        self.c = c
        self.rng = random.Random(seed)
        self.attempts = attempts
        self.pause = pause
        self.accepted: dict[str, int] = {}  # lead id -> events accepted after the form
        self.submitted = 0
        self.given_up = 0
        self.failures = Counter[str]()
        self.client = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=IN_FLIGHT))
        # Requests wait here, not in httpx's pool: the pool matches every queued request against
        # every connection each time one is freed, so a queue of thousands (a spell of slow answers
        # at 10 leads a second) took the client's whole CPU and it stopped sending (a soak run).
        self.slots = asyncio.Semaphore(IN_FLIGHT)

    async def post(self, path: str, body: dict[str, Any], key: str) -> httpx.Response | None:
        for _ in range(self.attempts):
            try:
                # Forms are public; behaviour events come from the tracking source with its API key.
                headers = {"Idempotency-Key": key, **self.c.credential("website-tracking")}
                async with self.slots:
                    r = await self.client.post(self.c.url("intake") + path, json=body, headers=headers)
                if r.status_code == 202:
                    return r
                self.failures[str(r.status_code)] += 1
            except httpx.HTTPError as exc:
                self.failures[type(exc).__name__] += 1
            await asyncio.sleep(self.pause)
        self.given_up += 1
        return None

    async def lead(self, i: int) -> None:
        self.submitted += 1
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
        """``count`` leads spread evenly over ``seconds``; returns when all are done."""
        tasks = []
        t0 = time.monotonic()
        for n in range(count):
            delay = t0 + n * seconds / count - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.lead(start + n)))
        await asyncio.gather(*tasks)


def groups_of(services: list[str]) -> list[str]:
    return [sub.group for svc in load_services(services) for sub in svc.subscriptions]


async def restart_service(
    c: Cluster, k: Kafka, services: list[str], catch_up: dict[str, float], timeout: float = 30
) -> float:
    """SIGKILL the services, start them again after a moment; returns (and records the worst of,
    per service) the seconds until their groups consumed what was on their topics."""
    for s in services:
        c.stop(s, signal.SIGKILL)
    await asyncio.sleep(random.uniform(0.5, 2.0))
    for s in services:
        c.start(s)
    await asyncio.to_thread(c.wait_ready, services)
    took = await k.caught_up(groups_of(services), timeout=timeout)
    for s in services:
        catch_up[s] = max(catch_up.get(s, 0.0), took)
    return took


def script(name: str, action: str, env: Mapping[str, str] | None = None) -> str:
    """Runs deploy/<name> <action> (with ``env``: e.g. another instance's ports); returns stdout."""
    done = subprocess.run(  # noqa: S603
        [str(ROOT / "deploy" / name), action], check=True, capture_output=True, text=True, timeout=180, env=env
    )
    return done.stdout


def wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"process {pid} still there after SIGKILL"
        time.sleep(0.1)


async def start_consumers_until_caught_up(c: Cluster, k: Kafka, timeout: float) -> float:
    """Start every consumer service; returns the seconds until all groups consumed what was there."""
    started = time.monotonic()
    for s in CONSUMERS:
        c.start(s)
    await asyncio.to_thread(c.wait_ready, list(CONSUMERS))
    await k.caught_up(list(GROUP_TOPICS), timeout=timeout)
    return time.monotonic() - started


@dataclass
class Verdict:
    """The leads (and other things) that break an invariant, by kind, each with what was seen."""

    leads: int = 0
    lost: dict[str, str] = field(default_factory=dict)
    doubled: dict[str, str] = field(default_factory=dict)
    out_of_order: dict[str, str] = field(default_factory=dict)
    other: list[str] = field(default_factory=list)  # lag, outbox rows, dead letters, phantom leads...
    dead_letters: int = 0

    def note(self, kind: dict[str, str], lead: str, what: str) -> None:
        kind[lead] = f"{kind[lead]}; {what}" if lead in kind else what

    @property
    def clean(self) -> bool:
        return not (self.lost or self.doubled or self.out_of_order or self.other)

    def summary(self, limit: int = 10) -> str:
        def some(d: dict[str, str]) -> list[str]:
            return [f"{k}: {v}" for k, v in list(d.items())[:limit]]

        return (
            f"{self.leads} leads; lost {len(self.lost)} {some(self.lost)}; doubled {len(self.doubled)} "
            f"{some(self.doubled)}; out of order {len(self.out_of_order)} {some(self.out_of_order)}; "
            f"other {self.other[:limit]}"
        )


async def check(k: Kafka, pg_url: str, schema_prefix: str, accepted: Mapping[str, int]) -> Verdict:
    """Checks every invariant over every accepted lead (lead id -> events accepted after its form).
    Call it once the load has stopped, every deadline has come due and the groups caught up."""
    v = Verdict(leads=len(accepted))
    for group in GROUP_TOPICS:
        if lag := await k.lag(group):
            v.other.append(f"{group} left {lag} events unprocessed")
    s = schema_prefix
    conn = await asyncpg.connect(dsn(pg_url))
    try:
        for svc in CONSUMERS:
            schema = f"{s}{svc.replace('-', '_')}"
            if left := await conn.fetchval(f'SELECT count(*) FROM "{schema}".outbox'):
                v.other.append(f"{svc} outbox still holds {left} events")
        assignments = Counter(r["lead_id"] for r in await conn.fetch(f'SELECT lead_id FROM "{s}routing".assignments'))
        clocks = Counter(
            (r["lead_id"], r["name"]) for r in await conn.fetch(f'SELECT lead_id, name FROM "{s}sla_monitor".clocks')
        )
        overdue = await conn.fetch(f'SELECT lead_id, status FROM "{s}sla_monitor".clocks WHERE due_at < now()')
        alerts = Counter(
            (r["lead_id"], r["clock"]) for r in await conn.fetch(f'SELECT lead_id, clock FROM "{s}sla_monitor".alerts')
        )
        activities: dict[str, list[str]] = defaultdict(list)
        for r in await conn.fetch(f'SELECT lead_id, detail FROM "{s}scoring".activities ORDER BY id'):
            activities[r["lead_id"]].append(r["detail"])
        handed = {r["lead_id"] for r in await conn.fetch(f'SELECT lead_id FROM "{s}feedback".handed_over')}
    finally:
        await conn.close()

    for lead, steps in accepted.items():
        n = assignments[lead]
        if n != 1:
            v.note(v.lost if n == 0 else v.doubled, lead, f"{n} assignments")
        for name in ("first_touch", "disposition"):
            n = clocks[(lead, name)]
            if n != 1:
                v.note(v.lost if n == 0 else v.doubled, lead, f"{n} {name} clocks")
        if lead not in handed:
            v.note(v.lost, lead, "feedback never learnt of it")
        expected = ["demo-request"] + [f"step-{n}" for n in range(1, steps + 1)]
        seen = activities[lead]
        if seen != expected:
            if len(seen) > len(set(seen)) or set(seen) - set(expected):
                v.note(v.doubled, lead, f"handled {seen}, sent {expected}")
            elif set(seen) < set(expected):
                v.note(v.lost, lead, f"handled {seen}, sent {expected}")
            else:
                v.note(v.out_of_order, lead, f"handled {seen}, sent {expected}")
    if phantoms := set(assignments) - set(accepted):
        v.other.append(f"{len(phantoms)} assignments for leads nobody submitted (a 202 not counted?)")

    # Downstream: one score event per accepted event (a relay may repeat an event id, never lose
    # or invent one), scores rising in the order the events were sent.
    scored: dict[str, dict[str, int]] = defaultdict(dict)  # lead -> event id -> score, first seen
    for rec in await k.records(LEADS_SCORED):
        env = Envelope.from_record(rec)
        if isinstance(env.data, LeadScored):
            scored[env.subject].setdefault(env.id, env.data.score)
    for lead, steps in accepted.items():
        scores = list(scored[lead].values())
        if len(scores) != 1 + steps:
            where = v.lost if len(scores) < 1 + steps else v.doubled
            v.note(where, lead, f"{len(scores)} score events for {1 + steps} events")
        elif scores != sorted(set(scores)):
            v.note(v.out_of_order, lead, f"scores {scores}")

    # Deadlines: at most one alert each; every overdue first-touch deadline (nobody touched these
    # leads) fired exactly once, and its alert event has one id (a relay may repeat it).
    for (lead, clock), n in alerts.items():
        if n > 1:
            v.note(v.doubled, lead, f"{n} alerts for {clock}")
    for r in overdue:
        if r["status"] != "breached":
            v.note(v.lost, r["lead_id"], f"overdue clock {r['status']}, never breached")
    if (due := {r["lead_id"] for r in overdue}) != set(accepted):
        v.other.append(
            f"overdue clocks for {len(due)} leads, {len(accepted)} accepted "
            f"(first {sorted(set(accepted) ^ due)[:5]}): is every deadline due yet?"
        )
    if sum(alerts.values()) != len(overdue):
        v.other.append(f"{sum(alerts.values())} alerts for {len(overdue)} overdue deadlines")
    ids_per_deadline: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rec in await k.records(SLA_ALERTS):
        e = Envelope.from_record(rec)
        ids_per_deadline[(e.subject, e.data.clock)].add(e.id)
    if set(ids_per_deadline) != set(alerts):
        v.other.append(f"{len(ids_per_deadline)} deadlines with alert events, {len(alerts)} with alerts")
    for (lead, clock), ids in ids_per_deadline.items():
        if len(ids) > 1:
            v.note(v.doubled, lead, f"{len(ids)} alert event ids for {clock}")
    for topic in TOPIC_PARTITIONS:
        dead = await k.records(dlq_topic(topic))
        v.dead_letters += len(dead)
        v.other.extend(f"dead letter on {topic}: {r.header('dlq_group')} {r.header('dlq_error')}" for r in dead)
    return v
