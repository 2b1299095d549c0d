"""The embedded bus: an in-process, partitioned, append-only log with consumer-group offsets.

It mirrors Kafka's semantics that Leadrelay relies on: per-key ordering, one
delivery per consumer group, and redelivery of everything after the last
committed offset. Given a ``path`` (what ``leadrelay run`` does), every record
and every committed offset is also written through to a SQLite file before
``publish``/``commit`` return, so a crash or restart of the embedded process
loses nothing that was acknowledged: the log is reloaded, and what no group
had committed is delivered again. Records every group has committed are
dropped from the file at start-up (the embedded stand-in for retention).
Without a path (tests) it is memory only.
"""

from __future__ import annotations

import asyncio
import fcntl
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from leadrelay.bus import TopicPartition, partition_for
from leadrelay.events import Record, all_topics, decode_headers, encode_headers


@dataclass
class _Partition:
    base: int = 0  # absolute offset of records[0]
    records: list[Record] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.base + len(self.records)


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class BusInUse(RuntimeError):
    """Another process holds the embedded event log."""


class MemoryBus:
    def __init__(self, topics: dict[str, int] | None = None, path: Path | None = None) -> None:
        self._partitions = dict(topics or all_topics())
        self._log: dict[str, list[_Partition]] = {
            t: [_Partition() for _ in range(n)] for t, n in self._partitions.items()
        }
        self._committed: dict[tuple[str, str, int], int] = {}
        self._changed = asyncio.Event()
        self._groups: set[str] = set()
        self._db: sqlite3.Connection | None = None
        self._lock: IO[str] | None = None
        if path is not None:
            self._open(path)

    # ---- durability (embedded mode)

    def _open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One process owns the log at a time (a second `leadrelay run`, or a `leadrelay dlq` tool
        # next to a running one, would fork the offsets): an exclusive lock beside the file.
        self._lock = open(path.with_suffix(".lock"), "a+")  # noqa: SIM115 (held for the bus' lifetime)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise BusInUse(f"the embedded event log {path} is in use by another Leadrelay process") from None
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS log (topic TEXT, part INTEGER, off INTEGER, key BLOB, value BLOB,"
            " headers TEXT, PRIMARY KEY (topic, part, off))"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS offsets (grp TEXT, topic TEXT, part INTEGER, off INTEGER,"
            " PRIMARY KEY (grp, topic, part))"
        )
        # Which groups read which topic: a group that has read but not yet committed a partition
        # still needs its records, so retention must know it exists.
        db.execute("CREATE TABLE IF NOT EXISTS subscriptions (grp TEXT, topic TEXT, PRIMARY KEY (grp, topic))")
        for grp, topic, part, off in db.execute("SELECT grp, topic, part, off FROM offsets"):
            self._committed[(grp, topic, part)] = off
        readers: dict[str, set[str]] = {}
        for grp, topic in db.execute("SELECT grp, topic FROM subscriptions"):
            readers.setdefault(topic, set()).add(grp)
        # Retention: drop what every group reading the topic has committed.
        floors: dict[tuple[str, int], int] = {}
        for topic, groups in readers.items():
            for part in range(self._partitions.get(topic, 0)):
                floors[(topic, part)] = min(self._committed.get((g, topic, part), 0) for g in groups)
        with _transaction(db):
            for (topic, part), floor in floors.items():
                db.execute("DELETE FROM log WHERE topic = ? AND part = ? AND off < ?", (topic, part, floor))
        rows = db.execute("SELECT topic, part, off, key, value, headers FROM log ORDER BY topic, part, off")
        for topic, part, off, key, value, headers in rows:
            parts = self._log.get(topic)
            if parts is None or part >= len(parts):
                continue
            p = parts[part]
            if not p.records:
                p.base = off
            p.records.append(
                Record(topic=topic, key=key, value=value, headers=decode_headers(headers), partition=part, offset=off)
            )
        for (topic, part), floor in floors.items():
            parts = self._log.get(topic)
            if parts is not None and part < len(parts) and not parts[part].records:
                parts[part].base = floor
        self._db = db

    # ---- Bus

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    async def ping(self) -> None:
        return None

    async def publish(self, records: Sequence[Record]) -> None:
        placed: list[tuple[_Partition, Record]] = []
        pending: dict[int, int] = {}  # id(partition) -> records placed in this call
        for rec in records:
            parts = self._log.get(rec.topic)
            if parts is None:
                raise ValueError(f"unknown topic {rec.topic!r}")
            n = partition_for(rec.key, len(parts))
            p = parts[n]
            offset = p.end + pending.get(id(p), 0)
            pending[id(p)] = pending.get(id(p), 0) + 1
            placed.append((p, replace(rec, partition=n, offset=offset)))
        if self._db is not None:
            rows = [(r.topic, r.partition, r.offset, r.key, r.value, encode_headers(r.headers)) for _, r in placed]
            with _transaction(self._db):
                self._db.executemany(
                    "INSERT INTO log (topic, part, off, key, value, headers) VALUES (?, ?, ?, ?, ?, ?)", rows
                )
        for p, r in placed:
            p.records.append(r)
        self._changed.set()

    def consumer(self, group: str, topics: Sequence[str]) -> MemoryConsumer:
        for t in topics:
            if t not in self._log:
                raise ValueError(f"unknown topic {t!r}")
        return MemoryConsumer(self, group, list(topics))

    async def read_topic(self, topic: str) -> list[Record]:
        if topic not in self._log:
            raise ValueError(f"unknown topic {topic!r}")
        return self.records(topic)

    # ---- used by the consumers, tests and the benchmark

    def records(self, topic: str) -> list[Record]:
        return [r for part in self._log[topic] for r in part.records]

    def committed(self, group: str, topic: str, partition: int) -> int:
        return self._committed.get((group, topic, partition), self._log[topic][partition].base)

    def _commit(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        changed = []
        for (topic, p), off in offsets.items():
            key = (group, topic, p)
            if off > self._committed.get(key, -1):
                self._committed[key] = off
                changed.append((group, topic, p, off))
        if self._db is not None and changed:
            with _transaction(self._db):
                self._db.executemany(
                    "INSERT INTO offsets (grp, topic, part, off) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (grp, topic, part) DO UPDATE SET off = excluded.off",
                    changed,
                )

    def _subscribe(self, group: str, topics: list[str]) -> None:
        if self._db is not None:
            with _transaction(self._db):
                self._db.executemany(
                    "INSERT OR IGNORE INTO subscriptions (grp, topic) VALUES (?, ?)", [(group, t) for t in topics]
                )


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, group: str, topics: list[str]) -> None:
        self._bus = bus
        self._group = group
        self._topics = topics
        self._position: dict[TopicPartition, int] = {}
        self._started = False

    async def start(self) -> None:
        if self._group in self._bus._groups:
            raise RuntimeError(f"consumer group {self._group!r} already has a member in this process")
        self._bus._groups.add(self._group)
        self._started = True
        self._bus._subscribe(self._group, self._topics)
        await self.rewind()

    async def stop(self) -> None:
        if self._started:  # only the member that holds the group releases it
            self._bus._groups.discard(self._group)
            self._started = False

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
            start = max(pos, part.base) - part.base
            if start < len(part.records):
                chunk = part.records[start : start + (max_records - len(out))]
                out.extend(chunk)
                self._position[(topic, p)] = part.base + start + len(chunk)
                if len(out) >= max_records:
                    break
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self._bus._commit(self._group, offsets)

    async def lag(self) -> int | None:
        return sum(
            self._bus._log[t][p].end - self._bus.committed(self._group, t, p)
            for t in self._topics
            for p in range(len(self._bus._log[t]))
        )
