"""The event bus: one interface, two backends (Apache Kafka, and an in-process log for embedded mode).

Both give the same guarantees, which the shared test suite checks on each:
records of one key keep their order (one partition per key), each consumer
group gets every record, and whatever a group has not committed is delivered
again after :meth:`Consumer.rewind` or a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from leadrelay.events import Record

TopicPartition = tuple[str, int]


class Consumer(Protocol):
    async def start(self) -> None: ...

    async def getmany(self, max_records: int, timeout_ms: int) -> list[Record]:
        """The next records (possibly none) after the current position."""
        ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit the next offset to read, per partition, once the work before it is durable."""
        ...

    async def rewind(self) -> None:
        """Go back to the committed offsets, so what was not committed is delivered again."""
        ...

    async def lag(self) -> int | None:
        """Records not yet committed on the assigned partitions (None when unknown)."""
        ...

    async def stop(self) -> None: ...


class Bus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, records: Sequence[Record]) -> None:
        """Return once every record is acknowledged (on Kafka: by all in-sync replicas)."""
        ...

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer: ...

    async def read_topic(self, topic: str) -> list[Record]:
        """Every record now on ``topic``, without a consumer group (for tools such as ``leadrelay dlq``)."""
        ...

    async def ping(self) -> None:
        """Raise if the bus cannot be reached."""
        ...


def partition_for(key: bytes | None, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), so both backends place keys alike."""
    if key is None:
        return 0
    return (_murmur2(key) & 0x7FFFFFFF) % partitions


def _murmur2(data: bytes) -> int:
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    extra = length % 4
    if extra >= 3:
        h ^= data[(length & ~3) + 2] << 16
    if extra >= 2:
        h ^= data[(length & ~3) + 1] << 8
    if extra >= 1:
        h ^= data[length & ~3]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h
