"""Runs one consumer group: batches in, one transaction per batch, offsets committed after it.

A batch is decoded first. Only records that can never succeed go to
``<topic>.dlq``: those that cannot be decoded (bad headers, an unknown type) or
that the event's own model refuses as invalid. The rest are handled in one
transaction that also claims their ids in the inbox (so a redelivered record
changes nothing) and writes the events they cause to the outbox; the offsets
are committed only once that work, and any dead letter, is durable.

Any other failure, a database down or a bug in a handler alike, is retried
with backoff from the committed offsets: the consumer makes no progress,
``/readyz`` fails with the error, and a metric and a log line name the group
and the error. Nothing is dead-lettered for it, so a deployed bug costs
latency, never leads; once fixed, the backlog is handled. And if the share of
dead letters among a group's recent records passes a limit (a producer newer
than its consumers, say), the consumer stops the same way instead of draining
the traffic into the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from leadrelay.bus import Bus, Consumer, TopicPartition
from leadrelay.consumers import Handlers
from leadrelay.events import DecodeError, Envelope, Record, dlq_topic
from leadrelay.inbox import claim, inbox_table
from leadrelay.logging import bind_event, get_logger
from leadrelay.unavailable import Unavailable, cancel_and_wait, within
from leadrelay.unit_of_work import UnitOfWork, UnitsOfWork

log = get_logger("leadrelay.worker")

B = TypeVar("B")
Prefetch = Callable[[UnitOfWork, list[Envelope]], Awaitable[B]]

CONSUMED = Counter("leadrelay_events_consumed_total", "Events handled", ["group", "topic"])
DUPLICATES = Counter("leadrelay_events_duplicate_total", "Redelivered events skipped by the inbox", ["group"])
DEAD_LETTERED = Counter(
    "leadrelay_events_dead_lettered_total", "Events sent to a dead-letter topic", ["group", "topic"]
)
BATCH_FAILURES = Counter(
    "leadrelay_consumer_batch_failures_total",
    "Batches that failed and will be retried (kind: transient, error or dead_letter_limit)",
    ["group", "kind", "error"],
)
FAILING = Gauge("leadrelay_consumer_failing", "1 while a consumer keeps failing the same batch", ["group"])
BATCH_SECONDS = Histogram("leadrelay_batch_seconds", "Time to handle and commit one batch", ["group"])
LAG = Gauge("leadrelay_consumer_lag", "Records not yet committed", ["group"])


# SQLSTATEs worth retrying: connection exceptions (08...), the server shutting down or
# starting up (57P01-57P03), out of resources (53...), serialisation failures and deadlocks.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P0", "40001", "40P01")


def is_transient(exc: BaseException) -> bool:
    """Errors of the infrastructure (the record is fine): logged and counted apart from the rest."""
    if isinstance(exc, Unavailable | OperationalError | InterfaceError | ConnectionError | TimeoutError | OSError):
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


class DeadLetterLimit(RuntimeError):
    """Too many of a group's recent records would go to the dead-letter topic: stop instead."""


@dataclass(frozen=True)
class DeadLetterPolicy:
    # Stop when more than this share of the last `window` records would be dead letters...
    max_share: float = 0.5
    window: int = 200
    # ...once at least this many records have been seen (a lone poison record at start-up passes).
    min_records: int = 20


@dataclass
class Health:
    """A consumer's state, as ``/readyz`` and the tests see it."""

    started: bool = False
    last_progress: float = field(default_factory=time.monotonic)
    lag: int | None = None
    last_error: str | None = None
    stalled: bool = False
    # Set while the same batch keeps failing (a database down, a bug): no progress is made.
    failing_since: float | None = None

    @property
    def ok(self) -> bool:
        return self.started and not self.stalled and self.failing_since is None

    def describe(self) -> str:
        if self.ok:
            return "ok"
        if self.failing_since is not None:
            return f"failing for {time.monotonic() - self.failing_since:.0f}s: {self.last_error}"
        state = "stalled" if self.stalled else "starting"
        return f"{state} (lag={self.lag}, error={self.last_error})"


class ConsumerWorker(Generic[B]):
    def __init__(
        self,
        *,
        group: str,
        topics: Sequence[str],
        bus: Bus,
        units: UnitsOfWork,
        prefetch: Prefetch[B],
        handlers: Handlers[B],
        max_records: int = 500,
        fetch_timeout_ms: int = 100,
        stall_seconds: float = 60.0,
        start_timeout_seconds: float = 60.0,
        retry_max_seconds: float = 10.0,
        dead_letters: DeadLetterPolicy | None = None,
    ) -> None:
        handlers.check_covers(topics)
        self.group = group
        self.topics = list(topics)
        self.bus = bus
        # Each batch is one unit of work: committed, it wakes the relay if it wrote outbox rows.
        self.units = units
        db = units.db
        self.inbox = inbox_table(dict(db.metadata.tables), db.schema)
        self.prefetch = prefetch
        self.handlers = handlers
        self.clock = units.clock
        self.max_records = max_records
        self.fetch_timeout_ms = fetch_timeout_ms
        self.stall_seconds = stall_seconds
        self.start_timeout_seconds = start_timeout_seconds
        self.retry_max_seconds = retry_max_seconds
        self.dead_letters = dead_letters or DeadLetterPolicy()
        self.health = Health()
        # Recent records, True for each one dead-lettered: the share limit's window.
        self._recent: deque[bool] = deque(maxlen=self.dead_letters.window)
        self._consumer: Consumer | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._restart = asyncio.Event()
        self._last_failure = 0.0
        self._abandoned: set[asyncio.Future[None]] = set()  # consumers given up on, stopping

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
                if await cancel_and_wait([self._task]):  # shutting down: left behind, not waited for
                    log.error("consumer_loop_did_not_stop", group=self.group, seconds=10)
        await self._close_consumer()

    async def _start(self, consumer: Consumer) -> None:
        """Bounded: an aiokafka consumer whose group coordinator was lost (a broker restart) can wait
        for its assignment forever, and until it is started the watchdog has no consumer to check.
        Not ``wait_for``, which would then wait for the cancelled start to finish cancelling too.
        A start that fails or times out is abandoned (stopped in the background) and raised."""
        start = asyncio.ensure_future(consumer.start())
        try:
            done, _ = await asyncio.wait({start}, timeout=self.start_timeout_seconds)
            if not done:
                raise TimeoutError(f"the consumer of {self.group} did not start in {self.start_timeout_seconds}s")
            start.result()
        except BaseException:
            start.cancel()
            stopping = asyncio.ensure_future(within(10, consumer.stop()))
            self._abandoned.add(stopping)
            stopping.add_done_callback(self._forget)
            raise

    def _forget(self, task: asyncio.Future[None]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("consumer_stop_failed", group=self.group, error=repr(task.exception()))

    async def _close_consumer(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            # asyncio.wait, not wait_for: on a timeout wait_for cancels and then waits for the
            # cancellation, forever if a hung aiokafka call swallows it.
            stopping = asyncio.ensure_future(consumer.stop())
            done, _ = await asyncio.wait({stopping}, timeout=10)
            if not done:  # a hung consumer must not block a restart
                stopping.cancel()
                log.warning("consumer_stop_failed", group=self.group, error="did not stop within 10 s")
            elif stopping.cancelled():
                # aiokafka's stop can end cancelled with the broker gone; asking for its exception
                # would raise CancelledError here and silently end the watchdog (seen: the group
                # never came back after an outage longer than consumer_stall_seconds).
                log.warning("consumer_stop_failed", group=self.group, error="its stop was cancelled")
            elif stopping.exception() is not None:
                log.warning("consumer_stop_failed", group=self.group, error=repr(stopping.exception()))

    async def lag(self) -> int | None:
        """Records on this group's partitions not yet committed (None before the consumer runs)."""
        consumer = self._consumer
        if consumer is None:
            return None
        return await consumer.lag()

    # ---- main loop

    async def _run(self) -> None:
        backoff = 0.2
        me = asyncio.current_task()
        while not self._stopping:
            if me is not self._task:
                return  # a loop the watchdog gave up on (it swallowed its cancellation): another runs
            try:
                if self._consumer is None or self._restart.is_set():
                    self._restart.clear()
                    await self._close_consumer()
                    consumer = self.bus.consumer(self.group, self.topics)
                    await self._start(consumer)
                    self._consumer = consumer
                    self.health.started = True
                    self.health.last_progress = time.monotonic()
                    log.info("consumer_started", group=self.group, topics=self.topics)
                records = await self._consumer.getmany(self.max_records, self.fetch_timeout_ms)
                if records:
                    outcomes = await self._process(records)
                    await self._consumer.commit(_next_offsets(records))
                    self._recent.extend(outcomes)
                    self._progressed()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind = (
                    "transient"
                    if is_transient(exc)
                    else "dead_letter_limit"
                    if isinstance(exc, DeadLetterLimit)
                    else "error"
                )
                self._failed(exc, kind, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_seconds)
                try:
                    if self._consumer is not None:
                        await self._consumer.rewind()
                except Exception as rewind_exc:
                    log.warning("consumer_rewind_failed", group=self.group, error=repr(rewind_exc))
                    self._restart.set()

    def _progressed(self) -> None:
        if self.health.failing_since is not None:
            log.info(
                "consumer_recovered",
                group=self.group,
                after_seconds=round(time.monotonic() - self.health.failing_since, 1),
            )
        self.health.last_progress = time.monotonic()
        self.health.stalled = False
        self.health.last_error = None
        self.health.failing_since = None
        FAILING.labels(self.group).set(0)

    def _retrying(self) -> bool:
        """The loop is alive and retrying a failing batch (it knows why it makes no progress)."""
        return self.health.failing_since is not None and time.monotonic() - self._last_failure < self.stall_seconds

    def _failed(self, exc: Exception, kind: str, retry_in: float) -> None:
        self._last_failure = time.monotonic()
        self.health.last_error = repr(exc)[:1000]
        if self.health.failing_since is None:
            self.health.failing_since = time.monotonic()
        FAILING.labels(self.group).set(1)
        BATCH_FAILURES.labels(self.group, kind, type(exc).__name__).inc()
        emit = log.warning if kind == "transient" else log.error
        emit(
            "consumer_batch_failed",
            group=self.group,
            kind=kind,
            error=repr(exc)[:1000],
            failing_seconds=round(time.monotonic() - self.health.failing_since, 1),
            retry_in=retry_in,
        )

    async def _process(self, records: list[Record]) -> list[bool]:
        """Handle a batch; returns, per record, whether it was dead-lettered. Raises (and nothing is committed) if the batch must be retried."""
        started = time.perf_counter()
        good: list[tuple[Record, Envelope]] = []
        dead: list[tuple[Record, str]] = []
        outcomes: list[bool] = []
        for rec in records:
            try:
                good.append((rec, Envelope.from_record(rec)))
                outcomes.append(False)
            except DecodeError as exc:
                dead.append((rec, f"undecodable: {exc}"))
                outcomes.append(True)
        if dead:
            self._check_dead_letter_share(outcomes)
        if good:
            await self._handle(good)
        if dead:
            await self._dead_letter(dead)
        BATCH_SECONDS.labels(self.group).observe(time.perf_counter() - started)
        return outcomes

    def _check_dead_letter_share(self, outcomes: list[bool]) -> None:
        policy = self.dead_letters
        window = (list(self._recent) + outcomes)[-policy.window :]
        share = sum(window) / len(window)
        if len(window) >= policy.min_records and share > policy.max_share:
            raise DeadLetterLimit(
                f"{sum(window)} of the last {len(window)} records of group {self.group} could not be decoded "
                f"(more than {policy.max_share:.0%}); stopping instead of dead-lettering them. Is a producer "
                "newer than this consumer? Deploy the consumer that knows the new events, or raise "
                "LEADRELAY_DLQ_MAX_SHARE to drain them."
            )

    async def _handle(self, items: list[tuple[Record, Envelope]]) -> None:
        async with self.units.begin() as uow:
            # The inbox rows go in first: the ids already there (handled before) come back absent.
            claimed = await claim(uow.session, self.inbox, [(env.id, rec.topic) for rec, env in items], uow.now)
            fresh: list[tuple[Record, Envelope]] = []
            for rec, env in items:
                if env.id not in claimed:
                    DUPLICATES.labels(self.group).inc()
                    continue
                claimed.discard(env.id)  # the same id twice in one batch counts once
                fresh.append((rec, env))
            if fresh:
                # One round of queries for the whole batch instead of one per event.
                batch = await self.prefetch(uow, [env for _, env in fresh])
                for rec, env in fresh:
                    handler = self.handlers.handler_for(env)
                    if handler is not None:
                        with bind_event(env.subject, env.id):
                            await handler(batch, env.data)
                    CONSUMED.labels(self.group, rec.topic).inc()

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
                        ("dlq_time", self.clock.now().isoformat().encode()),
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
                lag = await within(max(interval, 1.0), consumer.lag())
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
            elif idle_for > self.stall_seconds and not self._retrying():
                # Lag and no progress (or a consumer too stuck to report its lag): the fetch may be hung
                # for good, as aiokafka consumers can be after a broker restart or a rebalance. Cancel
                # the loop wherever it is stuck and start over with a new consumer.
                self.health.stalled = True
                log.error("consumer_stalled_restarting", group=self.group, lag=lag, idle_seconds=round(idle_for))
                try:
                    await self._restart_loop()
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if self._stopping or (task is not None and task.cancelling()):
                        raise  # the watchdog itself is being stopped
                    # A cancellation from inside the client library: the watchdog must live on.
                    log.warning("consumer_restart_interrupted", group=self.group)
                    if self._task is None or self._task.done():
                        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.group}")
                self.health.last_progress = time.monotonic()  # the new consumer's grace period

    async def _restart_loop(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            # Not wait_for (see _close_consumer): a loop stuck in a call that swallows the
            # cancellation is left behind rather than blocking the watchdog for good.
            done, _ = await asyncio.wait({task}, timeout=10)
            if not done:
                log.warning("consumer_loop_not_cancelled", group=self.group, seconds=10)
        await self._close_consumer()
        if not self._stopping:
            self._task = asyncio.create_task(self._run(), name=f"consumer:{self.group}")


def _next_offsets(records: list[Record]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = (r.topic, r.partition)
        offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
    return offsets
