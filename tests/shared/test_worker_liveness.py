"""A consumer that stops making progress while it has lag fails readiness and recovers on its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leadrelay.bus.memory import MemoryBus, MemoryConsumer
from leadrelay.db import Database
from leadrelay.events import LEADS_INTAKE, Envelope, Record
from leadrelay.unit_of_work import UnitOfWork
from leadrelay.worker import ConsumerWorker
from tests.shared.tables import make_worker
from tests.shared.test_bus_contract import Base, activity


class HangingConsumer(MemoryConsumer):
    """Like an aiokafka consumer after a bad rebalance: its fetch never returns."""

    async def getmany(self, max_records: int, timeout_ms: int) -> list[Record]:
        await asyncio.Event().wait()
        return []


async def committed(worker: ConsumerWorker[Any], timeout: float = 10) -> None:
    """The batch handled is committed a moment after its handler ran."""
    deadline = time.monotonic() + timeout
    while (lag := await worker.lag()) != 0:
        assert time.monotonic() < deadline, f"lag {lag}: the handled records were never committed"
        await asyncio.sleep(0.05)


class NeverStarts(MemoryConsumer):
    """Like an aiokafka consumer whose group coordinator was lost in a broker restart: it waits
    for a partition assignment that never comes."""

    stopped = False

    async def start(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped = True
        await super().stop()


class FlakyBus(MemoryBus):
    def __init__(self, first: type[MemoryConsumer] = HangingConsumer) -> None:
        super().__init__()
        self.consumers_made = 0
        self.first = first
        self.made: list[MemoryConsumer] = []

    def consumer(self, group: str, topics: Sequence[str]) -> MemoryConsumer:
        self.consumers_made += 1
        c = self.first(self, group, list(topics)) if self.consumers_made == 1 else super().consumer(group, topics)
        self.made.append(c)
        return c


async def test_a_hung_consumer_fails_readiness_and_is_replaced(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}", "live", Base.metadata)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    bus = FlakyBus()
    handled: list[str] = []

    async def handler(uow: UnitOfWork, env: Envelope) -> None:
        handled.append(env.id)

    worker = make_worker(group="live", topics=[LEADS_INTAKE], bus=bus, db=db, handle=handler, stall_seconds=0.6)
    readiness_at_restart: list[bool] = []
    restart = worker._restart_loop

    async def observed_restart() -> None:
        readiness_at_restart.append(worker.health.ok)
        await restart()

    worker._restart_loop = observed_restart  # type: ignore[method-assign]
    worker.start()
    try:
        await bus.publish([activity("lead-h", i).to_record() for i in range(3)])
        deadline = time.monotonic() + 20
        while len(handled) < 3:
            assert time.monotonic() < deadline, "the hung consumer was never replaced"
            await asyncio.sleep(0.05)
        assert readiness_at_restart == [False], "readiness did not report the stall before the restart"
        assert bus.consumers_made == 2
        await committed(worker)
        await asyncio.sleep(1.0)
        assert worker.health.ok, "still reported stalled after recovering"
    finally:
        await worker.stop()
        await db.dispose()


async def test_a_consumer_that_never_starts_is_given_up_and_replaced(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'start.db'}", "start", Base.metadata)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    bus = FlakyBus(first=NeverStarts)
    handled: list[str] = []

    async def handler(uow: UnitOfWork, env: Envelope) -> None:
        handled.append(env.id)

    worker = make_worker(
        group="start", topics=[LEADS_INTAKE], bus=bus, db=db, handle=handler, stall_seconds=0.6, start_timeout_seconds=1
    )
    worker.start()
    try:
        await bus.publish([activity("lead-s", i).to_record() for i in range(3)])
        deadline = time.monotonic() + 20
        while len(handled) < 3:
            assert time.monotonic() < deadline, f"the consumer that never started was never replaced: {worker.health}"
            await asyncio.sleep(0.05)
        assert bus.consumers_made == 2
        first = bus.made[0]
        assert isinstance(first, NeverStarts) and first.stopped, "the abandoned consumer was not stopped"
        await committed(worker)
    finally:
        await worker.stop()
        await db.dispose()


class HangingConsumerWhoseStopIsCancelled(HangingConsumer):
    """As aiokafka's consumer with the broker gone: fetches hang, and stopping it ends cancelled."""

    async def stop(self) -> None:
        await super().stop()
        raise asyncio.CancelledError


async def test_the_watchdog_survives_a_consumer_whose_stop_ends_cancelled(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}", "live", Base.metadata)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    bus = FlakyBus(first=HangingConsumerWhoseStopIsCancelled)
    handled: list[str] = []

    async def handler(uow: UnitOfWork, env: Envelope) -> None:
        handled.append(env.id)

    worker = make_worker(group="gone", topics=[LEADS_INTAKE], bus=bus, db=db, handle=handler, stall_seconds=0.6)
    worker.start()
    try:
        await bus.publish([activity("lead-g", i).to_record() for i in range(3)])
        deadline = time.monotonic() + 20
        while len(handled) < 3:
            assert time.monotonic() < deadline, "the consumer was never replaced: the watchdog died"
            await asyncio.sleep(0.05)
        assert bus.consumers_made == 2
    finally:
        await worker.stop()
        await db.dispose()
