"""Intake's spool: the front door stays open while the broker is down.

An event the broker does not acknowledge within ``intake_direct_timeout_ms``
is written to the spool (an outbox in intake's own database, ``intake.models``)
and answered 202 all the same; the outbox relay (``leadrelay.outbox``) publishes
the spool in the order it was written once the broker is back, and deletes
what the broker acknowledged. While the spool holds events, every new event
goes through it too, so a lead's later events never overtake its spooled ones
(intake's replicas share the spool, and one relay per schema runs at a time).
A direct publish that gave up may still reach the broker later: the event is
then on its topic twice under one event id, and the consumers' inboxes drop
the second. Looking whether events wait costs one query per round, not one
per request: requests that arrive while a look is under way share the next
one (which begins after they arrived, so it sees every event spooled before
them, by any replica), and a slow database holds at most one connection for
the looks. Its queries are in ``intake.repository``. Depth and the age of the oldest event are measured every second
for ``/metrics`` and ``/readyz``; a full spool (``intake_spool_max_events``)
refuses new events with 503.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

from intake import repository
from leadrelay.events import Envelope
from leadrelay.logging import get_logger
from leadrelay.unavailable import Unavailable
from leadrelay.unit_of_work import UnitsOfWork

if TYPE_CHECKING:
    from intake.resources import IntakeContext

log = get_logger("intake.spool")

DEPTH = Gauge("leadrelay_intake_spool_depth", "Events in intake's spool, waiting for the broker")
OLDEST = Gauge(
    "leadrelay_intake_spool_oldest_age_seconds", "Age of the oldest event in intake's spool (0 when it is empty)"
)
SPOOLED = Counter(
    "leadrelay_intake_spooled_total",
    "Events accepted into the spool, by why: broker_slow (no acknowledgement in time), "
    "spool_not_empty (keeping a lead's order), always (intake_spool=always), broker_error",
    ["reason"],
)
ACCEPTED = Counter("leadrelay_intake_accepted_total", "Events answered 202, by path: direct or spool", ["path"])
LOOKS = Counter(
    "leadrelay_intake_spool_looks_total",
    "Queries that looked whether events wait in the spool (each answers every request that came meanwhile)",
)
MEASURE_SECONDS = 1.0


class SpoolFull(Exception):
    """The spool holds ``intake_spool_max_events``: intake refuses new events until it drains."""


class Spool:
    def __init__(self, units: UnitsOfWork, max_events: int, up: asyncio.Event | None = None) -> None:
        # The spool is the service's outbox: an event is put there by a unit of work, which wakes
        # the relay once it commits.
        self.units = units
        self.db = units.db
        # Set once the spool's table exists (the service migrated its database).
        self.up = up
        self.table = units.outbox
        self.clock = units.clock
        self.max_events = max_events
        # What the last look at the spool found: used when the database cannot be asked.
        self.known_nonempty = False
        self.depth: int | None = None
        self.oldest_age: float = 0.0
        self.error: str | None = None
        # Callers waiting for the next look, and the task that looks (one at a time).
        self._waiting: list[asyncio.Future[bool]] = []
        self._looker: asyncio.Task[None] | None = None

    async def holds_events(self) -> bool:
        """Whether any event waits in the spool, by a look that began after this call (raises
        :class:`Unavailable` if it cannot be read). Concurrent callers share looks: see the module."""
        self._check_up()
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        if self._looker is None:
            self._looker = asyncio.create_task(self._look_for_waiters(), name="intake-spool-look")
        return await waiter

    async def _look_for_waiters(self) -> None:
        """Answer every waiter with one query; the waiters that came meanwhile with the next."""
        try:
            while self._waiting:
                # Every waiter in ``batch`` was there before the query below began.
                batch, self._waiting = self._waiting, []
                try:
                    async with self.db.read() as session:
                        waits = await repository.an_event_waits(session, self.table)
                except Exception as exc:
                    for waiter in batch:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                except BaseException:
                    # Cancelled mid-look (the service stops): this batch is answered below with the rest.
                    self._waiting = batch + self._waiting
                    raise
                self.known_nonempty = waits
                LOOKS.inc()
                for waiter in batch:
                    if not waiter.done():
                        waiter.set_result(self.known_nonempty)
        finally:
            self._looker = None
            # Cancelled (the service stops): nobody is left waiting for an answer that will not come.
            for waiter in self._waiting:
                if not waiter.done():
                    waiter.set_exception(Unavailable(self.db.dependency, "intake is stopping"))
            self._waiting = []

    async def put_if_waiting(self, envelope: Envelope) -> bool:
        """If events wait in the spool, put this one behind them and return True; else False.
        Raises :class:`Unavailable` if the spool cannot be read, :class:`SpoolFull`. (Should the
        spool drain between the look and the write, the event is relayed from the spool all the
        same: behind the others, so still in order.)"""
        if not await self.holds_events():
            return False
        await self.put(envelope, "spool_not_empty")
        return True

    def _check_room(self) -> None:
        if self.depth is not None and self.depth >= self.max_events:
            raise SpoolFull(f"intake's spool holds {self.depth} events (at most {self.max_events})")

    def _spooled(self, envelope: Envelope, reason: str) -> None:
        self.known_nonempty = True
        if self.depth is not None:
            self.depth += 1
        SPOOLED.labels(reason).inc()
        log.info("event_spooled", lead_id=envelope.subject, event_id=envelope.id, reason=reason)

    async def put(self, envelope: Envelope, reason: str) -> None:
        """Store the event durably (committed before this returns), then wake the relay."""
        self._check_room()
        self._check_up()
        async with self.units.begin() as uow:
            uow.emit(envelope)
        self._spooled(envelope, reason)

    def _check_up(self) -> None:
        if self.up is not None and not self.up.is_set():
            raise Unavailable(self.db.dependency, "intake's spool: its database was not reachable at start-up yet")

    async def measure(self) -> None:
        """Depth and the oldest event's age, for the metrics and the readiness check."""
        async with self.db.read() as session:
            depth, oldest = await repository.depth_and_oldest(session, self.table)
        self.depth = depth
        self.known_nonempty = depth > 0
        self.oldest_age = max(0.0, (self.clock.now() - oldest).total_seconds()) if oldest is not None else 0.0
        DEPTH.set(depth)
        OLDEST.set(self.oldest_age)

    def check(self) -> str:
        """``/readyz``'s word on the spool: ok or full (the database check says whether it can be reached)."""
        if self.depth is not None and self.depth >= self.max_events:
            return f"full: {self.depth} events (at most {self.max_events}); the broker is not taking them"
        return "ok"


async def measure_spool(ctx: IntakeContext) -> None:
    """Background job: measure the spool every second until the service stops."""
    spool = ctx.resources.spool
    while not ctx.stopping.is_set():
        try:
            await spool.measure()
            spool.error = None
        except Unavailable as exc:
            spool.error = exc.detail
        except Exception as exc:
            spool.error = repr(exc)
            log.warning("spool_measure_failed", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), timeout=MEASURE_SECONDS)


def spool_checks(ctx: IntakeContext) -> dict[str, str]:
    return {"intake.spool": ctx.resources.spool.check()}
