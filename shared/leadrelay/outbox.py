"""The outbox: events written in the same transaction as the state they follow from, then relayed.

The table (:class:`OutboxMixin`), how a unit of work writes it (:func:`write`),
and how the relay reads, locks and deletes it all live here. The relay is woken
right after each commit that wrote outbox rows, so a hop costs milliseconds; the
periodic poll is only a safety net (after a crash, or when the bus was down).
Rows are deleted only after the bus acknowledged them: a crash in between
publishes them again, and the consumers' inboxes drop the duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime

from prometheus_client import Counter, Gauge
from sqlalchemy import String, Table, Text, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from leadrelay.bus import Bus
from leadrelay.db import BigId, Database, UtcDateTime
from leadrelay.events import Envelope, Record, decode_headers, encode_headers
from leadrelay.logging import get_logger
from leadrelay.unavailable import cancel_and_wait

log = get_logger("leadrelay.outbox")

RELAYED = Counter("leadrelay_outbox_relayed_total", "Outbox rows published", ["service"])
PENDING = Gauge("leadrelay_outbox_pending", "Outbox rows left after the last drain", ["service"])


class OutboxMixin:
    """Events written with the state they follow from, relayed to the bus after the commit."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    headers: Mapped[str] = mapped_column(Text())
    value: Mapped[str] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


def outbox_table(db: Database) -> Table:
    table = db.metadata.tables.get("outbox")
    if table is None:
        raise ValueError(f"{db.schema}: its models need an outbox table (OutboxMixin)")
    return table


async def write(session: AsyncSession, outbox: Table, envelopes: Sequence[Envelope], now: datetime) -> int:
    """Insert the envelopes' records in the caller's transaction; returns how many."""
    if not envelopes:
        return 0
    rows = []
    for env in envelopes:
        rec = env.to_record()
        rows.append(
            {
                "event_id": env.id,
                "topic": rec.topic,
                "key": env.subject,
                "headers": encode_headers(rec.headers),
                "value": rec.value.decode(),
                "created_at": now,
            }
        )
    await session.execute(insert(outbox), rows)
    return len(rows)


async def _take(session: AsyncSession, outbox: Table, limit: int) -> tuple[list[int], list[Record]]:
    result = await session.execute(select(outbox).order_by(outbox.c.id).limit(limit))
    ids: list[int] = []
    records: list[Record] = []
    for row in result:
        ids.append(row.id)
        records.append(
            Record(topic=row.topic, key=row.key.encode(), value=row.value.encode(), headers=decode_headers(row.headers))
        )
    return ids, records


async def _lock(session: AsyncSession, db: Database) -> bool:
    """One relay per service schema at a time, so events leave in the order they were written."""
    if not db.postgres:
        return True
    result = await session.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": f"outbox:{db.schema}"})
    return bool(result.scalar())


class OutboxRelay:
    def __init__(self, service: str, db: Database, bus: Bus, poll_seconds: float = 1.0, batch_size: int = 500) -> None:
        self.service = service
        self.db = db
        self.table = outbox_table(db)
        self.bus = bus
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self._draining = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.last_error: str | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox:{self.service}")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Let a drain in progress finish (cancel only as a last resort), then drain once more."""
        self._stopping = True
        self._wake.set()
        if self.last_error is not None:
            # The bus (or the database) is failing: a drain would only wait for its timeouts. The
            # rows stay and go out after the next start.
            grace_seconds = min(grace_seconds, 1.0)
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace_seconds)
            except (TimeoutError, Exception):
                if await cancel_and_wait([self._task]):  # shutting down: left behind, not waited for
                    log.error("outbox_relay_did_not_stop", service=self.service, seconds=10)
        if self.last_error is not None:
            log.info("outbox_left_for_next_start", service=self.service, error=self.last_error)
            return
        try:  # last drain so a clean shutdown leaves nothing behind
            await asyncio.wait_for(self.drain(), timeout=10)
        except Exception as exc:
            log.warning("outbox_final_drain_failed", service=self.service, error=repr(exc))

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            self._wake.clear()
            try:
                await self.drain()
                self.last_error = None
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = repr(exc)
                log.warning("outbox_relay_failed", service=self.service, error=repr(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def drain(self) -> int:
        """Publish everything in the outbox; returns how many rows went out."""
        total = 0
        while True:
            if self.db.postgres:
                # The advisory lock lives as long as the transaction: publish inside it.
                async with self.db.transaction() as session:
                    if not await _lock(session, self.db):
                        return total  # another replica is relaying this schema
                    ids, records = await _take(session, self.table, self.batch_size)
                    if ids:
                        await self.bus.publish(records)
                        await session.execute(delete(self.table).where(self.table.c.id.in_(ids)))
            else:
                # SQLite: one process, one drain at a time (an asyncio lock), and one connection that
                # a publish waiting for a slow broker must not hold (intake's spool writes through it).
                async with self._draining:
                    async with self.db.transaction() as session:
                        ids, records = await _take(session, self.table, self.batch_size)
                    if ids:
                        await self.bus.publish(records)
                        async with self.db.transaction() as session:
                            await session.execute(delete(self.table).where(self.table.c.id.in_(ids)))
            if not ids:
                PENDING.labels(self.service).set(0)
                return total
            total += len(ids)
            RELAYED.labels(self.service).inc(len(ids))
            if len(ids) < self.batch_size:
                return total

    async def pending(self) -> int:
        """Rows not yet relayed."""
        async with self.db.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(self.table)) or 0)
