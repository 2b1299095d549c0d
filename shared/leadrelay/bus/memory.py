"""The embedded bus: an in-process, partitioned, append-only log with consumer-group offsets.

It mirrors Kafka's semantics that Leadrelay relies on: per-key ordering, one
delivery per consumer group, and redelivery of everything after the last
committed offset. It lives in the process: records published but not yet
handled are lost if the process dies, which is why the durable outboxes of the
services still matter in embedded mode (see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from leadrelay.bus import TopicPartition, partition_for
from leadrelay.events import Record, all_topics


class MemoryBus:
    def __init__(self, topics: dict[str, int] | None = None) -> None:
        self._partitions = dict(topics or all_topics())
        self._log: dict[str, list[list[Record]]] = {t: [[] for _ in range(n)] for t, n in self._partitions.items()}
        self._committed: dict[tuple[str, str, int], int] = {}
        self._changed = asyncio.Event()
        self._groups: set[str] = set()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def publish(self, records: Sequence[Record]) -> None:
        for rec in records:
            parts = self._log.get(rec.topic)
            if parts is None:
                raise ValueError(f"unknown topic {rec.topic!r}")
            p = partition_for(rec.key, len(parts))
            parts[p].append(replace(rec, partition=p, offset=len(parts[p])))
        self._changed.set()

    def consumer(self, group: str, topics: Sequence[str]) -> MemoryConsumer:
        for t in topics:
            if t not in self._log:
                raise ValueError(f"unknown topic {t!r}")
        return MemoryConsumer(self, group, list(topics))

    # Used by tests and the benchmark.
    def records(self, topic: str) -> list[Record]:
        return [r for part in self._log[topic] for r in part]

    def committed(self, group: str, topic: str, partition: int) -> int:
        return self._committed.get((group, topic, partition), 0)


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, group: str, topics: list[str]) -> None:
        self._bus = bus
        self._group = group
        self._topics = topics
        self._position: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        if self._group in self._bus._groups:
            raise RuntimeError(f"consumer group {self._group!r} already has a member in this process")
        self._bus._groups.add(self._group)
        await self.rewind()

    async def stop(self) -> None:
        self._bus._groups.discard(self._group)

    async def rewind(self) -> None:
        self._position = {
            (t, p): self._bus.committed(self._group, t, p) for t in self._topics for p in range(len(self._bus._log[t]))
        }

    async def getmany(self, max_records: int, timeout_ms: int) -> list[Record]:
        batch = self._take(max_records)
        if batch:
            return batch
        self._bus._changed.clear()
        try:
            await asyncio.wait_for(self._bus._changed.wait(), timeout_ms / 1000)
        except TimeoutError:
            return []
        return self._take(max_records)

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for (topic, p), pos in self._position.items():
            part = self._bus._log[topic][p]
            if pos < len(part):
                chunk = part[pos : pos + (max_records - len(out))]
                out.extend(chunk)
                self._position[(topic, p)] = pos + len(chunk)
                if len(out) >= max_records:
                    break
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for (topic, p), off in offsets.items():
            key = (self._group, topic, p)
            self._bus._committed[key] = max(self._bus._committed.get(key, 0), off)

    async def lag(self) -> int | None:
        return sum(
            len(self._bus._log[t][p]) - self._bus.committed(self._group, t, p)
            for t in self._topics
            for p in range(len(self._bus._log[t]))
        )
