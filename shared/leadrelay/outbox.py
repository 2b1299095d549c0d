"""Relays a service's outbox to the bus.

Woken right after each commit that wrote outbox rows, so a hop costs
milliseconds; the periodic poll is only a safety net (after a crash, or when
the bus was down). Rows are deleted only after the bus acknowledged them: a
crash in between publishes them again, and the consumers' inboxes drop the
duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import Counter

from leadrelay.bus import Bus
from leadrelay.db import Database
from leadrelay.logging import get_logger

log = get_logger("leadrelay.outbox")

RELAYED = Counter("leadrelay_outbox_relayed_total", "Outbox rows published", ["service"])


class OutboxRelay:
    def __init__(self, service: str, db: Database, bus: Bus, poll_seconds: float = 1.0, batch_size: int = 500) -> None:
        self.service = service
        self.db = db
        self.bus = bus
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self._wake = asyncio.Event()
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
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace_seconds)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
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
            async with self.db.transaction() as session:
                if not await self.db.outbox_lock(session):
                    return total  # another replica is relaying this schema
                ids, records = await self.db.take_outbox(session, self.batch_size)
                if not ids:
                    return total
                await self.bus.publish(records)
                await self.db.delete_outbox(session, ids)
            total += len(ids)
            RELAYED.labels(self.service).inc(len(ids))
            if len(ids) < self.batch_size:
                return total
