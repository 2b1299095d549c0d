"""Runs one consumer group: batches in, one transaction per batch, offsets committed after it.

A batch is decoded first; records that can never be decoded go straight to
``<topic>.dlq``. The rest are handled in one transaction that also records
their ids in the inbox (so a redelivered record changes nothing) and writes
the events they cause to the outbox. If that transaction fails because of one
bad record, the batch is replayed one record per transaction and the culprit
is dead-lettered with its error; if it fails for a transient reason (database
or broker unreachable) nothing is committed, the consumer rewinds and retries
with backoff. Offsets are committed only once the work, and any dead letter,
is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from leadrelay.bus import Bus, Consumer, TopicPartition
from leadrelay.clock import Clock
from leadrelay.db import Database, UnitOfWork
from leadrelay.events import DecodeError, Envelope, Record, dlq_topic
from leadrelay.logging import bind_event, get_logger

log = get_logger("leadrelay.worker")

Handler = Callable[[UnitOfWork, Envelope], Awaitable[None]]
Prefetch = Callable[[UnitOfWork, list[Envelope]], Awaitable[None]]

CONSUMED = Counter("leadrelay_events_consumed_total", "Events handled", ["group", "topic"])
DUPLICATES = Counter("leadrelay_events_duplicate_total", "Redelivered events skipped by the inbox", ["group"])
DEAD_LETTERED = Counter(
    "leadrelay_events_dead_lettered_total", "Events sent to a dead-letter topic", ["group", "topic"]
)
BATCH_SECONDS = Histogram("leadrelay_batch_seconds", "Time to handle and commit one batch", ["group"])
LAG = Gauge("leadrelay_consumer_lag", "Records not yet committed", ["group"])


# SQLSTATEs worth retrying: connection exceptions (08...), the server shutting down or
# starting up (57P01-57P03), out of resources (53...), serialisation failures and deadlocks.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P0", "40001", "40P01")


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying (the record is fine, the infrastructure is not)."""
    if isinstance(exc, OperationalError | InterfaceError | ConnectionError | TimeoutError | OSError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(
            getattr(exc.orig, "__cause__", None), "sqlstate", None
        )
        if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
            return True
    try:
        from aiokafka.errors import KafkaError

        if isinstance(exc, KafkaError):
            return bool(getattr(exc, "retriable", True))
    except ImportError:  # pragma: no cover
        pass
    return False


@dataclass
class Health:
    started: bool = False
    last_progress: float = field(default_factory=time.monotonic)
    lag: int | None = None
    last_error: str | None = None
    stalled: bool = False

    @property
    def ok(self) -> bool:
        return self.started and not self.stalled


class ConsumerWorker:
    def __init__(
        self,
        *,
        group: str,
        topics: Sequence[str],
        bus: Bus,
        db: Database,
        handler: Handler,
        clock: Clock,
        prefetch: Prefetch | None = None,
        on_commit: Callable[[], None] = lambda: None,
        max_records: int = 500,
        fetch_timeout_ms: int = 100,
        stall_seconds: float = 60.0,
    ) -> None:
        self.group = group
        self.topics = list(topics)
        self.bus = bus
        self.db = db
        self.handler = handler
        self.prefetch = prefetch
        self.clock = clock
        self.on_commit = on_commit
        self.max_records = max_records
        self.fetch_timeout_ms = fetch_timeout_ms
        self.stall_seconds = stall_seconds
        self.health = Health()
        self._consumer: Consumer | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._restart = asyncio.Event()

    # ---- lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.group}")
        self._watchdog = asyncio.create_task(self._watch(), name=f"watchdog:{self.group}")

    async def stop(self, grace_seconds: float = 15.0) -> None:
        """Let the loop finish the batch in hand and commit it; cancel it only if that takes too long."""
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watchdog
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace_seconds)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                    await self._task
        await self._close_consumer()

    async def _close_consumer(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                await asyncio.wait_for(consumer.stop(), timeout=10)
            except Exception as exc:  # a hung consumer must not block a restart
                log.warning("consumer_stop_failed", group=self.group, error=repr(exc))

    # ---- main loop

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                if self._consumer is None or self._restart.is_set():
                    self._restart.clear()
                    await self._close_consumer()
                    consumer = self.bus.consumer(self.group, self.topics)
                    await consumer.start()
                    self._consumer = consumer
                    self.health.started = True
                    self.health.last_progress = time.monotonic()
                    log.info("consumer_started", group=self.group, topics=self.topics)
                records = await self._consumer.getmany(self.max_records, self.fetch_timeout_ms)
                if records:
                    wrote = await self._process(records)
                    await self._consumer.commit(_next_offsets(records))
                    self.health.last_progress = time.monotonic()
                    self.health.stalled = False
                    self.health.last_error = None
                    if wrote:
                        # Only a batch that wrote outbox rows wakes the relay: an empty drain
                        # still costs a transaction (lock and SELECT) on the database.
                        self.on_commit()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.health.last_error = repr(exc)
                log.warning("consumer_batch_failed", group=self.group, error=repr(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                try:
                    if self._consumer is not None:
                        await self._consumer.rewind()
                except Exception as rewind_exc:
                    log.warning("consumer_rewind_failed", group=self.group, error=repr(rewind_exc))
                    self._restart.set()

    async def _process(self, records: list[Record]) -> int:
        """Handle a batch; returns how many outbox rows it wrote."""
        started = time.perf_counter()
        wrote = 0
        good: list[tuple[Record, Envelope]] = []
        dead: list[tuple[Record, str]] = []
        for rec in records:
            try:
                good.append((rec, Envelope.from_record(rec)))
            except DecodeError as exc:
                dead.append((rec, f"undecodable: {exc}"))
        if good:
            try:
                wrote += await self._handle(good)
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.warning("batch_failed_replaying_singly", group=self.group, size=len(good), error=repr(exc))
                for item in good:
                    try:
                        wrote += await self._handle([item])
                    except Exception as single_exc:
                        if is_transient(single_exc) or not await self._database_up():
                            raise
                        dead.append((item[0], f"handler failed: {single_exc!r}"))
                        log.error(
                            "event_dead_lettered",
                            group=self.group,
                            lead_id=item[1].subject,
                            event_id=item[1].id,
                            error=repr(single_exc),
                        )
        if dead:
            await self._dead_letter(dead)
        BATCH_SECONDS.labels(self.group).observe(time.perf_counter() - started)
        return wrote

    async def _handle(self, items: list[tuple[Record, Envelope]]) -> int:
        async with self.db.unit_of_work(self.clock.now()) as uow:
            # The inbox rows go in first: the ids already there (handled before) come back absent.
            claimed = await self.db.claim(uow.session, [(env.id, rec.topic) for rec, env in items], uow.now)
            fresh: list[tuple[Record, Envelope]] = []
            for rec, env in items:
                if env.id not in claimed:
                    DUPLICATES.labels(self.group).inc()
                    continue
                claimed.discard(env.id)  # the same id twice in one batch counts once
                fresh.append((rec, env))
            if fresh and self.prefetch is not None:
                # One round of queries for the whole batch instead of one per event.
                await self.prefetch(uow, [env for _, env in fresh])
            for rec, env in fresh:
                with bind_event(env.subject, env.id):
                    await self.handler(uow, env)
                CONSUMED.labels(self.group, rec.topic).inc()
        return uow.flushed

    async def _database_up(self) -> bool:
        """Before blaming a record, make sure the database is not simply down."""
        try:
            await asyncio.wait_for(self.db.ping(), timeout=5)
            return True
        except Exception:
            return False

    async def _dead_letter(self, dead: list[tuple[Record, str]]) -> None:
        out = []
        for rec, error in dead:
            DEAD_LETTERED.labels(self.group, rec.topic).inc()
            log.error(
                "record_dead_lettered",
                group=self.group,
                topic=rec.topic,
                partition=rec.partition,
                offset=rec.offset,
                error=error[:500],
            )
            out.append(
                Record(
                    topic=dlq_topic(rec.topic),
                    key=rec.key,
                    value=rec.value,
                    headers=rec.headers
                    + (
                        ("dlq_error", error[:4000].encode()),
                        ("dlq_group", self.group.encode()),
                        ("dlq_topic", rec.topic.encode()),
                        ("dlq_partition", str(rec.partition).encode()),
                        ("dlq_offset", str(rec.offset).encode()),
                    ),
                )
            )
        await self.bus.publish(out)

    # ---- liveness: a consumer with lag that stops making progress is restarted

    async def _watch(self) -> None:
        interval = min(10.0, self.stall_seconds / 3)
        while not self._stopping:
            await asyncio.sleep(interval)
            consumer = self._consumer
            if consumer is None:
                continue
            try:
                lag = await asyncio.wait_for(consumer.lag(), timeout=max(interval, 1.0))
            except Exception as exc:
                lag = None
                self.health.last_error = f"lag check failed: {exc!r}"
            self.health.lag = lag
            if lag is not None:
                LAG.labels(self.group).set(lag)
            idle_for = time.monotonic() - self.health.last_progress
            if lag == 0:
                self.health.last_progress = time.monotonic()
                self.health.stalled = False
            elif idle_for > self.stall_seconds:
                # Lag and no progress (or a consumer too stuck to report its lag): the fetch may be hung
                # for good, as aiokafka consumers can be after a broker restart or a rebalance. Cancel
                # the loop wherever it is stuck and start over with a new consumer.
                self.health.stalled = True
                log.error("consumer_stalled_restarting", group=self.group, lag=lag, idle_seconds=round(idle_for))
                await self._restart_loop()
                self.health.last_progress = time.monotonic()  # the new consumer's grace period

    async def _restart_loop(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=10)
        await self._close_consumer()
        if not self._stopping:
            self._task = asyncio.create_task(self._run(), name=f"consumer:{self.group}")


def _next_offsets(records: list[Record]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = (r.topic, r.partition)
        offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
    return offsets
