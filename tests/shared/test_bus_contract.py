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

from leadrelay import dlq as dead_letters
from leadrelay.bus import Bus, Consumer
from leadrelay.bus.kafka import KafkaBus, create_topics
from leadrelay.bus.memory import MemoryBus
from leadrelay.db import Database
from leadrelay.events import (
    EVENT_TYPES,
    LEADS_FEEDBACK,
    LEADS_INTAKE,
    ActivityRecorded,
    ActivityType,
    Envelope,
    Record,
    all_topics,
    dlq_topic,
)
from leadrelay.unit_of_work import UnitOfWork
from leadrelay.worker import DeadLetterPolicy
from tests.shared.tables import Base, make_worker


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


_TRUTHY = object()


async def eventually(check: Callable[[], Any], timeout: float = 30.0, expect: Any = _TRUTHY) -> None:
    """Poll ``check`` (sync or async) until it is truthy, or equal to ``expect`` when given."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if (result == expect) if expect is not _TRUTHY else result:
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


def seqs(records: list[Record]) -> list[int]:
    return [int(Envelope.from_record(r).data.properties["seq"]) for r in records]  # type: ignore[attr-defined]


def next_offsets(records: list[Record]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for r in records:
        out[(r.topic, r.partition)] = max(out.get((r.topic, r.partition), 0), r.offset + 1)
    return out


async def test_a_new_member_resumes_after_the_committed_offsets(bus: Bus) -> None:
    await bus.publish([activity("lead-r", i).to_record() for i in range(6)])
    first = bus.consumer("g-resume", [LEADS_INTAKE])
    await first.start()
    try:
        got = await drain(first, 6)
        assert seqs(got) == list(range(6))
        await first.commit(next_offsets(got[:4]))
    finally:
        await first.stop()
    second = bus.consumer("g-resume", [LEADS_INTAKE])
    await second.start()
    try:
        assert seqs(await drain(second, 2)) == [4, 5], "a new member must start after the committed offsets"
    finally:
        await second.stop()


async def test_rewind_goes_back_to_the_committed_offset_or_the_beginning(bus: Bus) -> None:
    await bus.publish([activity("lead-w", i).to_record() for i in range(6)])
    consumer = bus.consumer("g-rewind", [LEADS_INTAKE])
    await consumer.start()
    try:
        got = await drain(consumer, 6)
        await consumer.rewind()  # nothing committed: from the beginning
        assert seqs(await drain(consumer, 6)) == list(range(6))
        await consumer.commit(next_offsets(got[:2]))
        await consumer.rewind()
        assert seqs(await drain(consumer, 4)) == [2, 3, 4, 5]
        await consumer.rewind()  # rewinding again gives the same records again
        assert seqs(await drain(consumer, 4)) == [2, 3, 4, 5]
    finally:
        await consumer.stop()


async def test_commits_are_per_group_and_lag_counts_what_is_not_committed(bus: Bus) -> None:
    await bus.publish([activity(f"lead-{i % 3}", i).to_record() for i in range(9)])
    await bus.publish([activity_on_feedback(f"lead-{i}", i) for i in range(2)])
    a = bus.consumer("g-lag-a", [LEADS_INTAKE])
    await a.start()
    try:
        got = await drain(a, 9)
        assert len(got) == 9
        assert await a.lag() == 9, "reading is not committing"
        await a.commit(next_offsets(got[:5]))
        assert await a.lag() == 4
        await a.commit(next_offsets(got))
        assert await a.lag() == 0, "the other topic's records are not this consumer's lag"
    finally:
        await a.stop()
    b = bus.consumer("g-lag-b", [LEADS_INTAKE, LEADS_FEEDBACK])
    await b.start()
    try:
        assert len(await drain(b, 11)) == 11, "another group's commits moved this group"
        assert await b.lag() == 11
    finally:
        await b.stop()


async def test_max_records_is_respected(bus: Bus) -> None:
    await bus.publish([activity("lead-m", i).to_record() for i in range(5)])
    consumer = bus.consumer("g-max", [LEADS_INTAKE])
    await consumer.start()
    try:
        got: list[Record] = []
        deadline = time.monotonic() + 30
        while len(got) < 5 and time.monotonic() < deadline:
            batch = await consumer.getmany(2, 200)
            assert len(batch) <= 2
            got.extend(batch)
        assert seqs(got) == list(range(5))
    finally:
        await consumer.stop()


def activity_on_feedback(lead: str, seq: int) -> Record:
    """A record on leads.feedback (the payload does not matter to the bus)."""
    rec = activity(lead, seq).to_record()
    return Record(topic=LEADS_FEEDBACK, key=rec.key, value=rec.value, headers=rec.headers)


async def dlq_records(bus: Bus, topic: str = LEADS_INTAKE) -> list[Record]:
    return await bus.read_topic(dlq_topic(topic))


async def seen_rows(db: Database) -> list[tuple[str, int]]:
    async with db.transaction() as s:
        return [(lead, seq) for lead, seq in (await s.execute(select(Seen.lead_id, Seen.seq).order_by(Seen.id))).all()]


def record_seen(handled: list[tuple[str, int]] | None = None) -> Callable[[UnitOfWork, Envelope], Any]:
    async def handle(uow: UnitOfWork, env: Envelope) -> None:
        seq = int(env.data.properties["seq"])  # type: ignore[attr-defined]
        uow.session.add(Seen(event_id=env.id, lead_id=env.subject, seq=seq))
        if handled is not None:
            handled.append((env.subject, seq))

    return handle


async def test_worker_handles_in_order_dedups_and_dead_letters_what_cannot_be_decoded(bus: Bus, db: Database) -> None:
    handled: list[tuple[str, int]] = []
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

    worker = make_worker(
        group="g-worker", topics=[LEADS_INTAKE], bus=bus, db=db, handle=record_seen(handled), stall_seconds=30
    )
    worker.start()
    try:
        await eventually(lambda: len(handled) >= 20)
        await eventually(lambda: worker.lag(), expect=0)
        dead = await dlq_records(bus)
    finally:
        await worker.stop()

    assert len(dead) == 2, [r.header("dlq_error") for r in dead]
    errors = sorted(r.header("dlq_error") or "" for r in dead)
    assert any("undecodable: missing CloudEvents header" in e for e in errors), errors
    assert any("undecodable" in e and "invalid" in e for e in errors), errors
    assert all(r.header("dlq_group") == "g-worker" for r in dead)
    # Everything else was handled exactly once, in order per lead, after the poison too.
    rows = await seen_rows(db)
    assert len(rows) == 20
    assert len(set(rows)) == 20, "a duplicate was handled twice"
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
    worker = make_worker(
        group="g-flaky", topics=[LEADS_INTAKE, LEADS_FEEDBACK], bus=bus, db=db, handle=flaky, retry_max_seconds=0.5
    )
    worker.start()
    try:

        async def all_seen() -> bool:
            return len(await seen_rows(db)) == 5

        await eventually(all_seen)
    finally:
        await worker.stop()
    assert await dlq_records(bus) == []


async def test_a_handler_bug_dead_letters_nothing_fails_readiness_and_loses_nothing_once_fixed(
    bus: Bus, db: Database
) -> None:
    """A bug deployed in a handler (it raises for every event) must not drain traffic into the
    dead-letter topic: the consumer stops where it is, says why, and resumes once fixed."""
    bug = {"deployed": True}
    handled: list[tuple[str, int]] = []
    seen = record_seen(handled)

    async def handle(uow: UnitOfWork, env: Envelope) -> None:
        if bug["deployed"]:
            raise KeyError("rescore: 'engagement_counts'")  # any bug, not a transient error
        await seen(uow, env)

    envelopes = [activity(f"lead-{i % 4}", i) for i in range(40)]
    await bus.publish([e.to_record() for e in envelopes])
    worker = make_worker(group="g-bug", topics=[LEADS_INTAKE], bus=bus, db=db, handle=handle, retry_max_seconds=0.3)
    worker.start()
    try:
        await eventually(lambda: worker.health.failing_since is not None)
        await asyncio.sleep(1.5)  # several retries
        assert not worker.health.ok, "readiness stayed green while every event failed"
        assert "engagement_counts" in worker.health.describe()
        assert handled == [] and await seen_rows(db) == []
        assert await dlq_records(bus) == [], "a handler bug sent events to the dead-letter topic"
        assert await worker.lag() == 40

        bug["deployed"] = False  # the fix
        await eventually(lambda: worker.lag(), expect=0)
        assert worker.health.ok
    finally:
        await worker.stop()
    rows = await seen_rows(db)
    assert sorted(rows) == sorted((e.subject, i) for i, e in enumerate(envelopes)), "lost or doubled events"
    for lead in {e.subject for e in envelopes}:
        seqs = [seq for who, seq in rows if who == lead]
        assert seqs == sorted(seqs)
    assert await dlq_records(bus) == []


def undecodable(lead: str, seq: int) -> Record:
    rec = activity(lead, seq).to_record()
    headers = tuple((k, b"leadrelay.intake.from_the_future.v9" if k == "ce_type" else v) for k, v in rec.headers)
    return Record(topic=rec.topic, key=rec.key, value=rec.value, headers=headers)


async def test_a_flood_of_undecodable_records_stops_the_consumer_instead_of_draining_it(bus: Bus, db: Database) -> None:
    """A producer newer than its consumer (a type the consumer does not know yet) would send
    everything to the dead-letter topic: past the share limit the consumer stops instead."""
    await bus.publish([undecodable(f"lead-{i % 3}", i) for i in range(30)])
    policy = DeadLetterPolicy(max_share=0.5, window=100, min_records=20)
    worker = make_worker(
        group="g-flood",
        topics=[LEADS_INTAKE],
        bus=bus,
        db=db,
        handle=record_seen(),
        retry_max_seconds=0.3,
        dead_letters=policy,
    )
    worker.start()
    try:
        await eventually(lambda: worker.health.failing_since is not None)
        await asyncio.sleep(1.0)
        assert "could not be decoded" in worker.health.describe()
        # Batches smaller than the policy's minimum pass before it applies (Kafka may hand over one
        # partition's few records first); the rest stays on the topic.
        early = len(await dlq_records(bus))
        assert early < policy.min_records
        assert await worker.lag() == 30 - early
    finally:
        await worker.stop()
    # An operator who decides they are garbage raises the limit: they go to the dead-letter topic.
    worker = make_worker(
        group="g-flood",
        topics=[LEADS_INTAKE],
        bus=bus,
        db=db,
        handle=record_seen(),
        dead_letters=DeadLetterPolicy(max_share=1.0),
    )
    worker.start()
    try:
        await eventually(lambda: worker.lag(), expect=0)
    finally:
        await worker.stop()
    assert len(await dlq_records(bus)) == 30


async def test_dead_letters_replayed_after_a_fix_are_handled_once(
    bus: Bus, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consumer that does not know an event type dead-letters it; once a consumer that knows it
    is deployed, ``replay`` puts the dead letters back, and replaying twice doubles nothing."""
    envelopes = [activity(f"lead-{i % 2}", i) for i in range(6)]
    with monkeypatch.context() as m:
        # The old consumer: it does not know activity_recorded.v1 yet.
        m.delitem(EVENT_TYPES, ActivityRecorded.TYPE)
        await bus.publish([e.to_record() for e in envelopes])
        old = make_worker(group="g-replay", topics=[LEADS_INTAKE], bus=bus, db=db, handle=record_seen())
        old.start()
        try:
            await eventually(lambda: old.lag(), expect=0)
        finally:
            await old.stop()
    letters = await dead_letters.list_dead_letters(bus, LEADS_INTAKE)
    assert [d.event_id for d in letters] == [e.id for e in envelopes]
    assert all("unknown event type" in (d.error or "") and d.group == "g-replay" for d in letters)
    assert {d.topic for d in letters} == {LEADS_INTAKE}

    fixed = make_worker(group="g-replay", topics=[LEADS_INTAKE], bus=bus, db=db, handle=record_seen())
    fixed.start()
    try:
        replayed = await dead_letters.replay(bus, LEADS_INTAKE, [envelopes[0].id])
        assert [d.event_id for d in replayed] == [envelopes[0].id]
        await eventually(lambda: seen_rows(db), expect=[(envelopes[0].subject, 0)])
        await dead_letters.replay(bus, LEADS_INTAKE)  # all six, the first one again
        await dead_letters.replay(bus, LEADS_INTAKE)  # and everything once more
        await eventually(lambda: fixed.lag(), expect=0)
        with pytest.raises(LookupError):
            await dead_letters.replay(bus, LEADS_INTAKE, ["no-such-event"])
    finally:
        await fixed.stop()
    rows = await seen_rows(db)
    assert sorted(rows) == sorted((e.subject, i) for i, e in enumerate(envelopes)), rows
    assert len(await dlq_records(bus)) == 6, "a replayed record went back to the dead-letter topic"


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
