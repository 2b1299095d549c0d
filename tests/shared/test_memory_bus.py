"""leadrelay.bus.memory: what only the embedded bus does (placement, group membership, waiting,
durability). The semantics both buses share (order per key, one delivery per group, commits,
rewind, lag) are tested on both in ``test_bus_contract.py``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from leadrelay.bus import partition_for
from leadrelay.bus.memory import MemoryBus, MemoryConsumer
from leadrelay.events import Record, all_topics

TOPIC = "leads.test"
OTHER = "leads.other"


def bus(partitions: int = 4) -> MemoryBus:
    return MemoryBus({TOPIC: partitions, OTHER: 2})


def rec(key: str, n: int, topic: str = TOPIC) -> Record:
    return Record(
        topic=topic, key=key.encode(), value=f"{key}:{n}".encode(), headers=(("ce_id", f"{key}-{n}".encode()),)
    )


async def started(b: MemoryBus, group: str, topics: list[str] | None = None) -> MemoryConsumer:
    consumer = b.consumer(group, topics or [TOPIC])
    await consumer.start()
    return consumer


async def drain(consumer: MemoryConsumer, max_records: int = 1000) -> list[Record]:
    out: list[Record] = []
    while batch := await consumer.getmany(max_records, timeout_ms=0):
        out.extend(batch)
    return out


def values(records: list[Record]) -> list[str]:
    return [r.value.decode() for r in records]


def next_offsets(records: list[Record]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for r in records:
        out[(r.topic, r.partition)] = max(out.get((r.topic, r.partition), 0), r.offset + 1)
    return out


KEYS = ["åsa.öberg", "jan.devries", "jürgen.groß", "王芳", "john.smith"]


async def publish_interleaved(b: MemoryBus, per_key: int = 5) -> None:
    for n in range(per_key):
        await b.publish([rec(k, n) for k in KEYS])


# ------------------------------------------------------------ publishing


async def test_records_land_in_the_key_partition_with_consecutive_offsets() -> None:
    b = bus()
    await publish_interleaved(b, 3)
    records = b.records(TOPIC)
    assert len(records) == 15
    for r in records:
        assert r.partition == partition_for(r.key, 4)
        assert r.headers[0][0] == "ce_id"
    by_partition: dict[int, list[int]] = {}
    for r in records:
        by_partition.setdefault(r.partition, []).append(r.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))


async def test_publish_to_an_unknown_topic_raises() -> None:
    b = bus()
    with pytest.raises(ValueError, match="unknown topic 'leads.nope'"):
        await b.publish([rec("a", 1, topic="leads.nope")])


def test_consumer_of_an_unknown_topic_raises() -> None:
    with pytest.raises(ValueError, match="unknown topic 'leads.nope'"):
        bus().consumer("g", [TOPIC, "leads.nope"])


def test_default_topics_are_the_services_topics() -> None:
    b = MemoryBus()
    for topic, partitions in all_topics().items():
        assert len(b._log[topic]) == partitions


# ------------------------------------------------------------ consuming


async def test_per_key_order_is_kept() -> None:
    b = bus()
    await publish_interleaved(b, 10)
    consumer = await started(b, "scoring")
    got = []
    while batch := await consumer.getmany(3, timeout_ms=0):  # small batches cross partition boundaries
        assert len(batch) <= 3
        got.extend(batch)
    assert len(got) == 50
    for key in KEYS:
        assert [v for v in values(got) if v.startswith(key + ":")] == [f"{key}:{n}" for n in range(10)]


async def test_each_consumer_group_receives_every_record() -> None:
    b = bus()
    await publish_interleaved(b)
    scoring = await started(b, "scoring")
    routing = await started(b, "routing")
    a, c = await drain(scoring), await drain(routing)
    assert sorted(values(a)) == sorted(values(c))
    assert len(a) == 25
    assert await drain(scoring) == []


async def test_consumer_reads_only_its_topics() -> None:
    b = bus()
    await b.publish([rec("a", 1), rec("b", 1, topic=OTHER)])
    only_test = await started(b, "g1", [TOPIC])
    both = await started(b, "g2", [TOPIC, OTHER])
    assert values(await drain(only_test)) == ["a:1"]
    assert sorted(values(await drain(both))) == ["a:1", "b:1"]


async def test_second_member_of_a_group_is_refused() -> None:
    b = bus()
    first = await started(b, "routing")
    second = b.consumer("routing", [TOPIC])
    with pytest.raises(RuntimeError, match="consumer group 'routing' already has a member"):
        await second.start()
    other_group = await started(b, "feedback")  # other groups are fine
    await other_group.stop()
    await first.stop()
    await second.start()  # once the first member has left, a new one can join
    await second.stop()


async def test_stopping_a_refused_member_does_not_release_the_group() -> None:
    b = bus()
    first = await started(b, "routing")
    refused = b.consumer("routing", [TOPIC])
    with pytest.raises(RuntimeError):
        await refused.start()
    await refused.stop()
    third = b.consumer("routing", [TOPIC])
    with pytest.raises(RuntimeError, match="already has a member"):
        await third.start()
    await first.stop()


async def test_commit_never_moves_backwards() -> None:
    b = bus(partitions=1)
    await b.publish([rec("k", n) for n in range(5)])
    consumer = await started(b, "feedback")
    await consumer.commit({(TOPIC, 0): 4})
    await consumer.commit({(TOPIC, 0): 1})
    assert b.committed("feedback", TOPIC, 0) == 4
    await consumer.rewind()
    assert values(await drain(consumer)) == ["k:4"]


async def test_lag_ignores_topics_the_consumer_does_not_read() -> None:
    b = bus()
    consumer = await started(b, "g", [OTHER])
    await publish_interleaved(b, 1)
    assert await consumer.lag() == 0


# ------------------------------------------------------------ waiting


async def test_getmany_waits_up_to_the_timeout() -> None:
    consumer = await started(bus(), "g")
    start = time.monotonic()
    assert await consumer.getmany(10, timeout_ms=150) == []
    elapsed = time.monotonic() - start
    assert 0.13 <= elapsed < 3.0  # at least the timeout; the bound only catches a hang


async def test_getmany_wakes_up_when_a_record_is_published() -> None:
    b = bus()
    consumer = await started(b, "g")
    waiting = asyncio.create_task(consumer.getmany(10, timeout_ms=5000))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    start = time.monotonic()
    await b.publish([rec("王芳", 1)])
    got = await asyncio.wait_for(waiting, timeout=2)
    assert values(got) == ["王芳:1"]
    assert time.monotonic() - start < 3.0  # woken, not timed out after 5 s


async def test_getmany_returns_at_once_when_records_are_waiting() -> None:
    b = bus()
    await b.publish([rec("a", 1)])
    consumer = await started(b, "g")
    start = time.monotonic()
    assert values(await consumer.getmany(10, timeout_ms=5000)) == ["a:1"]
    assert time.monotonic() - start < 3.0  # at once, not after the 5 s timeout


async def test_two_groups_waiting_both_wake_up() -> None:
    b = bus()
    one = await started(b, "one")
    two = await started(b, "two")
    tasks = [asyncio.create_task(c.getmany(10, timeout_ms=5000)) for c in (one, two)]
    await asyncio.sleep(0.05)
    await b.publish([rec("jan.devries", 1)])
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=2)
    assert [values(r) for r in results] == [["jan.devries:1"], ["jan.devries:1"]]


# ------------------------------------------------------------ durable mode (path given: what `leadrelay run` does)


def durable(path: Path) -> MemoryBus:
    return MemoryBus({TOPIC: 1, OTHER: 1}, path=path)


async def test_records_and_offsets_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite"
    b = durable(path)
    await b.publish([rec("åsa", n) for n in range(4)] + [Record(topic=OTHER, key=None, value=b"no key")])
    consumer = await started(b, "scoring", [TOPIC, OTHER])
    assert len(await drain(consumer)) == 5
    await consumer.commit({(TOPIC, 0): 2})
    await consumer.stop()
    await b.stop()

    again = durable(path)
    try:
        consumer = await started(again, "scoring", [TOPIC, OTHER])
        redelivered = await drain(consumer)
        assert sorted(values(redelivered)) == ["no key", "åsa:2", "åsa:3"]
        by_value = {r.value: r for r in redelivered}
        assert by_value[b"\xc3\xa5sa:3"].offset == 3
        assert by_value[b"\xc3\xa5sa:3"].headers == (("ce_id", "åsa-3".encode()),)
        assert by_value[b"no key"].key is None
        assert again.committed("scoring", TOPIC, 0) == 2
        assert await consumer.lag() == 3
    finally:
        await again.stop()


async def test_restart_drops_what_every_group_committed_and_keeps_offsets_absolute(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite"
    b = durable(path)
    await b.publish([rec("jan", n) for n in range(5)])
    for group, upto in (("routing", 3), ("sla-monitor", 4)):
        c = await started(b, group)
        await drain(c)
        await c.commit({(TOPIC, 0): upto})
        await c.stop()
    await b.stop()

    again = durable(path)
    try:
        assert [r.offset for r in again.records(TOPIC)] == [3, 4]  # 0..2 were committed by both groups
        slow = await started(again, "routing")
        assert values(await drain(slow)) == ["jan:3", "jan:4"]
        await again.publish([rec("jan", 5)])
        assert [r.offset for r in again.records(TOPIC)] == [3, 4, 5]
        fast = await started(again, "sla-monitor")
        assert values(await drain(fast)) == ["jan:4", "jan:5"]
    finally:
        await again.stop()


async def test_restart_keeps_records_a_group_has_not_committed(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite"
    b = durable(path)
    await b.publish([rec("wang", n) for n in range(3)] + [rec("x", 0, topic=OTHER)])
    routing = await started(b, "routing", [TOPIC])
    await drain(routing)
    await routing.commit({(TOPIC, 0): 3})
    scoring = await started(b, "scoring", [TOPIC, OTHER])
    await drain(scoring)
    await scoring.commit({(OTHER, 0): 1})  # crash before committing TOPIC
    await b.stop()

    again = durable(path)
    try:
        scoring = await started(again, "scoring", [TOPIC, OTHER])
        assert values(await drain(scoring)) == ["wang:0", "wang:1", "wang:2"]
    finally:
        await again.stop()


async def test_a_failed_publish_does_not_wedge_the_durable_bus(tmp_path: Path) -> None:
    b = durable(tmp_path / "bus.sqlite")
    try:
        with contextlib.suppress(Exception):
            await b.publish([Record(topic=TOPIC, key=b"k", value=b"v", headers=(("x-bin", b"\xff"),))])
        await b.publish([rec("k", 1)])
        assert "k:1" in values(b.records(TOPIC))
    finally:
        await b.stop()
