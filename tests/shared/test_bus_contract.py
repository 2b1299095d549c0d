"""One suite, two buses: the embedded bus must behave like Kafka where Leadrelay relies on it.

Every test runs on the in-process bus and on a real Kafka broker (topics and
groups under a unique prefix), and drives the real ConsumerWorker: per-key
order, one delivery per group, redelivery of what was not committed, the
inbox dropping duplicates, and poison records dead-lettered while the
partition keeps flowing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from leadrelay.bus import Bus, Consumer
from leadrelay.bus.kafka import KafkaBus, create_topics
from leadrelay.bus.memory import MemoryBus
from leadrelay.bus.worker import ConsumerWorker
from leadrelay.clock import SystemClock
from leadrelay.db import Database, UnitOfWork
from leadrelay.events import (
    LEADS_FEEDBACK,
    LEADS_INTAKE,
    ActivityRecorded,
    ActivityType,
    Envelope,
    Record,
    all_topics,
    dlq_topic,
)
from tests.shared.tables import Base


class Seen(Base):
    __tablename__ = "seen"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64))
    lead_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)


def activity(lead: str, seq: int, event_id: str | None = None) -> Envelope:
    data = ActivityRecorded(
        lead_id=lead,
        activity=ActivityType.PAGE_VIEWED,
        occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
        url=f"https://example.se/p/{seq}",
        properties={"seq": str(seq)},
    )
    return Envelope.new(data, source="/test", time=datetime(2026, 3, 1, tzinfo=UTC), event_id=event_id)


@pytest.fixture(params=["memory", "kafka"])
async def bus(request: pytest.FixtureRequest, unique: str) -> AsyncIterator[Bus]:
    if request.param == "memory":
        b: Bus = MemoryBus()
    else:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        prefix = f"{unique}."
        await create_topics(bootstrap, all_topics(), prefix=prefix)
        b = KafkaBus(bootstrap, client_id=unique, linger_ms=2, prefix=prefix)
    await b.start()
    yield b
    await b.stop()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", "test", Base.metadata)
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield database
    await database.dispose()


async def drain(consumer: Consumer, want: int, timeout: float = 30.0) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got.extend(await consumer.getmany(500, 200))
    return got


async def eventually(check: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_order_per_key_and_one_delivery_per_group(bus: Bus) -> None:
    leads = [f"lead-{i}" for i in range(5)]
    envelopes = [activity(leads[i % 5], i) for i in range(60)]
    await bus.publish([e.to_record() for e in envelopes])
    for group in ("g-one", "g-two"):
        consumer = bus.consumer(group, [LEADS_INTAKE])
        await consumer.start()
        try:
            records = await drain(consumer, 60)
        finally:
            await consumer.stop()
        assert len(records) == 60, f"group {group} got {len(records)} of 60"
        for lead in leads:
            seqs = [int(Envelope.from_record(r).data.properties["seq"]) for r in records if r.key == lead.encode()]
            assert seqs == sorted(seqs), f"{lead} out of order in {group}: {seqs}"
            assert len(seqs) == 12


async def test_uncommitted_records_are_delivered_again(bus: Bus) -> None:
    await bus.publish([activity("lead-a", i).to_record() for i in range(10)])
    consumer = bus.consumer("g-redeliver", [LEADS_INTAKE])
    await consumer.start()
    try:
        first = await drain(consumer, 10)
        assert len(first) == 10
        await consumer.rewind()
        again = await drain(consumer, 10)
        assert [r.offset for r in again] == [r.offset for r in first]
        # Commit the first four only: a new member of the group starts after them.
        part = first[0].partition
        await consumer.commit({(LEADS_INTAKE, part): first[3].offset + 1})
    finally:
        await consumer.stop()
    consumer = bus.consumer("g-redeliver", [LEADS_INTAKE])
    await consumer.start()
    try:
        rest = await drain(consumer, 6)
        assert [r.offset for r in rest] == [r.offset for r in first[4:]]
        lag = await consumer.lag()
        assert lag == 6, lag
    finally:
        await consumer.stop()


async def test_worker_handles_in_order_dedups_and_dead_letters_poison(bus: Bus, db: Database) -> None:
    handled: list[tuple[str, int]] = []

    async def handler(uow: UnitOfWork, env: Envelope) -> None:
        seq = int(env.data.properties["seq"])  # type: ignore[attr-defined]
        if seq == 13:
            raise ValueError("seq 13 is cursed")
        uow.session.add(Seen(event_id=env.id, lead_id=env.subject, seq=seq))
        handled.append((env.subject, seq))

    good = [activity("lead-x" if i % 2 else "lead-y", i) for i in range(20)]
    duplicate = activity("lead-x", 5, event_id=good[5].id)  # a producer retry: same event id
    garbage = Record(topic=LEADS_INTAKE, key=b"lead-x", value=b"{not json", headers=(("ce_type", b"nope"),))
    wrong_payload = Record(
        topic=LEADS_INTAKE,
        key=b"lead-y",
        value=b'{"lead_id": "lead-y"}',
        headers=activity("lead-y", 0).to_record().headers,
    )
    records = [e.to_record() for e in good[:10]] + [garbage, duplicate.to_record(), wrong_payload]
    records += [e.to_record() for e in good[10:]]
    await bus.publish(records)

    worker = ConsumerWorker(
        group="g-worker", topics=[LEADS_INTAKE], bus=bus, db=db, handler=handler, clock=SystemClock(), stall_seconds=30
    )
    worker.start()
    try:
        await eventually(lambda: len(handled) >= 19)
        dlq = bus.consumer("g-dlq-reader", [dlq_topic(LEADS_INTAKE)])
        await dlq.start()
        try:
            dead = await drain(dlq, 3)
        finally:
            await dlq.stop()
    finally:
        await worker.stop()

    assert len(dead) == 3, [r.header("dlq_error") for r in dead]
    errors = sorted(r.header("dlq_error") or "" for r in dead)
    assert any("undecodable: missing CloudEvents header" in e for e in errors), errors
    assert any("undecodable" in e and "invalid" in e for e in errors), errors
    assert any("seq 13 is cursed" in e for e in errors), errors
    assert all(r.header("dlq_group") == "g-worker" for r in dead)
    # Everything else was handled exactly once, in order per lead, after the poison too.
    async with db.transaction() as s:
        rows = (await s.execute(select(Seen.lead_id, Seen.seq).order_by(Seen.id))).all()
    assert len(rows) == 19
    assert len({(lead, seq) for lead, seq in rows}) == 19, "a duplicate was handled twice"
    for lead in ("lead-x", "lead-y"):
        seqs = [seq for who, seq in rows if who == lead]
        assert seqs == sorted(seqs), seqs
    assert worker.health.ok


async def test_worker_retries_transient_failures_without_losing_or_dead_lettering(bus: Bus, db: Database) -> None:
    attempts = {"n": 0}

    async def flaky(uow: UnitOfWork, env: Envelope) -> None:
        attempts["n"] += 1
        if attempts["n"] <= 3:
            raise ConnectionError("database went away")
        uow.session.add(Seen(event_id=env.id, lead_id=env.subject, seq=0))

    await bus.publish([activity("lead-t", i).to_record() for i in range(5)])
    worker = ConsumerWorker(
        group="g-flaky", topics=[LEADS_INTAKE, LEADS_FEEDBACK], bus=bus, db=db, handler=flaky, clock=SystemClock()
    )
    worker.start()
    try:

        async def all_seen() -> bool:
            async with db.transaction() as s:
                return len((await s.execute(select(Seen.event_id))).all()) == 5

        await eventually(all_seen)
    finally:
        await worker.stop()
    dlq = bus.consumer("g-dlq-check", [dlq_topic(LEADS_INTAKE)])
    await dlq.start()
    try:
        assert await dlq.getmany(10, 1500) == []
    finally:
        await dlq.stop()


async def test_embedded_log_survives_a_restart_and_redelivers_what_was_not_committed(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    bus = MemoryBus(path=path)
    await bus.publish([activity("lead-r", i).to_record() for i in range(8)])
    consumer = bus.consumer("g", [LEADS_INTAKE])
    await consumer.start()
    first = await drain(consumer, 8, timeout=2)
    await consumer.commit({(LEADS_INTAKE, first[0].partition): first[2].offset + 1})
    await bus.stop()  # the process dies; nothing else is saved

    reopened = MemoryBus(path=path)
    consumer = reopened.consumer("g", [LEADS_INTAKE])
    await consumer.start()
    again = await drain(consumer, 5, timeout=2)
    assert [r.offset for r in again] == [r.offset for r in first[3:]]
    assert [r.value for r in again] == [r.value for r in first[3:]]
    assert await consumer.lag() == 5
    # A new group starts at the oldest record still kept: the committed ones were compacted away.
    other = reopened.consumer("h", [LEADS_INTAKE])
    await other.start()
    assert [r.offset for r in await drain(other, 5, timeout=2)] == [r.offset for r in first[3:]]
    # New records continue the offsets.
    await reopened.publish([activity("lead-r", 99).to_record()])
    assert (await drain(consumer, 1, timeout=2))[0].offset == first[-1].offset + 1
    await reopened.stop()
