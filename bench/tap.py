"""A bench-owned Kafka reader: what arrived on which topic, when, with its broker timestamp.

No consumer group (it assigns itself every partition and reads from the start), so it
does not disturb the groups under test. For each record it keeps the producer's
timestamp (CreateTime: when the producing service called send) and the wall time it
reached the bench.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer


@dataclass(frozen=True, slots=True)
class Seen:
    ts: float  # the record's timestamp, seconds
    arrived: float  # wall clock when the bench read it
    event_id: str
    type: str


@dataclass
class Tap:
    bootstrap: str
    topics: list[str]
    # (topic, ce_type) -> key (lead id) -> its first record of that type; topic -> event id -> record
    by_key: dict[tuple[str, str], dict[str, Seen]] = field(default_factory=dict)
    by_id: dict[str, dict[str, Seen]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        for t in self.topics:
            self.by_id.setdefault(t, {})
            self.counts.setdefault(t, 0)
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=2000,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="bench-tap")

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.time()
            for tp, messages in batches.items():
                topic = tp.topic
                by_id = self.by_id[topic]
                self.counts[topic] += len(messages)
                for m in messages:
                    eid = etype = ""
                    for k, v in m.headers:
                        if k == "ce_id":
                            eid = v.decode()
                        elif k == "ce_type":
                            etype = v.decode()
                    seen = Seen(m.timestamp / 1000, now, eid, etype)
                    by_id[eid] = seen
                    if m.key is not None:
                        by_key = self.by_key.get((topic, etype))
                        if by_key is None:
                            by_key = self.by_key[(topic, etype)] = {}
                        by_key.setdefault(m.key.decode(), seen)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def keyed(self, topic: str, etype: str) -> dict[str, Seen]:
        return self.by_key.setdefault((topic, etype), {})

    async def wait_keys(
        self, topic: str, etype: str, keys: set[str], timeout: float, idle: float | None = None
    ) -> bool:
        """Until every key arrived on ``topic`` (True), or ``timeout`` s passed, or nothing new
        arrived for ``idle`` s (False). Bounded."""
        return await _arrival(lambda: self.keyed(topic, etype), keys, timeout, idle)

    async def wait_ids(self, topic: str, ids: set[str], timeout: float, idle: float | None = None) -> bool:
        return await _arrival(lambda: self.by_id[topic], ids, timeout, idle)


async def _arrival(seen: Callable[[], Container[str]], wanted: set[str], timeout: float, idle: float | None) -> bool:
    """Until everything ``wanted`` is in ``seen()`` (True), or ``timeout`` s passed, or nothing new
    arrived for ``idle`` s (False)."""
    deadline = time.monotonic() + timeout
    last_n, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        got = seen()
        n = sum(1 for k in wanted if k in got)
        if n == len(wanted):
            return True
        if n != last_n:
            last_n, last_change = n, time.monotonic()
        elif idle is not None and time.monotonic() - last_change > idle:
            return False
        await asyncio.sleep(0.2)
    return False
