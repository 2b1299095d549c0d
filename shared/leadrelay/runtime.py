"""How a service plugs into Leadrelay, and the runtime that hosts one or all of them.

A service package exposes a :class:`ServiceDefinition` (registered under the
``leadrelay.services`` entry point). The runtime is the one composition root:
it builds each service's database, outbox relay, consumers and routes, and the
same code hosts one service per process (distributed) or all five in one
(embedded).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, cast

from fastapi import APIRouter
from sqlalchemy.orm import DeclarativeBase
from starlette.middleware import Middleware
from typing_extensions import TypeVar

from leadrelay.bus import Bus
from leadrelay.clock import Clock
from leadrelay.consumers import Handlers
from leadrelay.db import Database, schema_name, service_url
from leadrelay.events import Envelope
from leadrelay.logging import get_logger
from leadrelay.migrations import migrate
from leadrelay.outbox import OutboxRelay
from leadrelay.rules import Rules
from leadrelay.settings import Settings
from leadrelay.unavailable import Unavailable, cancel_and_wait, within
from leadrelay.unit_of_work import UnitOfWork, UnitsOfWork
from leadrelay.worker import ConsumerWorker, DeadLetterPolicy

log = get_logger("leadrelay.runtime")
B = TypeVar("B")
# A service's resources: what it builds once at start-up and hands, typed, to its routes, handlers
# and jobs (intake's use case and spool, sla-monitor's notifier). None for a service that has none.
R = TypeVar("R", default=None)

SERVICE_NAMES = ("intake", "scoring", "routing", "sla-monitor", "feedback")


@dataclass
class Subscription(Generic[B]):
    """A consumer group: its topics, the prefetch that loads a batch's state into the service's
    typed batch object ``B``, and the handlers that take that batch and one event each."""

    group: str
    topics: Sequence[str]
    prefetch: Callable[[ServiceContext[Any], UnitOfWork, list[Envelope]], Awaitable[B]]
    handlers: Handlers[B]

    def __post_init__(self) -> None:
        self.handlers.check_covers(self.topics)


def _no_resources(_ctx: ServiceContext[None]) -> None:
    return None


@dataclass
class ServiceDefinition(Generic[R]):
    name: str
    router: Callable[[ServiceContext[R]], APIRouter]
    base: type[DeclarativeBase] | None = None  # None: the service keeps no state
    migrations: Path | None = None
    subscriptions: list[Subscription[Any]] = field(default_factory=list)
    background: list[Callable[[ServiceContext[R]], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # ASGI middleware the service's routes need (e.g. intake's CORS policy), built from its context;
    # it sees every request of the app, so it must pass on what is not its service's.
    middleware: Callable[[ServiceContext[R]], Middleware] | None = None
    # True for a service whose routes keep their promise while the broker is down, as long as its
    # own database works (intake's spool): its readiness then needs the broker or the database.
    spools_events: bool = False
    # The service's own readiness checks, beside its database, the bus and its consumers.
    checks: Callable[[ServiceContext[R]], dict[str, str]] | None = None
    # Builds the service's resources once, when the runtime is built, from the context's parts
    # (settings, rules, clock, bus, database, relay); every route, handler and job then reads them
    # from ``ctx.resources``, typed.
    resources: Callable[[ServiceContext[None]], R] = cast("Callable[[ServiceContext[None]], R]", _no_resources)


@dataclass
class ServiceContext(Generic[R]):
    """What a service's routes, handlers and background tasks get: no module globals."""

    name: str
    settings: Settings
    rules: Rules
    clock: Clock
    bus: Bus
    db: Database | None
    relay: OutboxRelay | None
    resources: R
    workers: list[ConsumerWorker[Any]] = field(default_factory=list)
    # Set when the process shuts down: background jobs finish their step and return.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once the database is migrated and the relay, consumers and jobs run: until then (the
    # database was down at start-up) the routes answer 503.
    up: asyncio.Event = field(default_factory=asyncio.Event)
    _units: UnitsOfWork | None = field(default=None, repr=False)

    @property
    def database(self) -> Database:
        if self.db is None:
            raise RuntimeError(f"service {self.name} has no database")
        return self.db

    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """The one way to write (see ``leadrelay.unit_of_work``): ``async with ctx.unit_of_work() as
        uow``; once it commits, the relay and every sender that registered rows are woken."""
        return self.units.begin()

    @property
    def units(self) -> UnitsOfWork:
        if self._units is None:
            self._units = UnitsOfWork(self.database, self.clock, self.relay)
        return self._units

    def envelope(self, data: Any, event_id: str | None = None) -> Envelope:
        return Envelope.new(data, source=f"/leadrelay/{self.name}", time=self.clock.now(), event_id=event_id)


def load_services(names: Sequence[str] | None = None) -> list[ServiceDefinition[Any]]:
    """The installed services (entry point group ``leadrelay.services``), in pipeline order."""
    found = {ep.name: ep for ep in entry_points(group="leadrelay.services")}
    wanted = list(names or SERVICE_NAMES)
    missing = [n for n in wanted if n not in found]
    if missing:
        raise RuntimeError(f"service(s) not installed: {', '.join(missing)}")
    return [found[n].load() for n in wanted]


class Runtime:
    """Builds and runs the given services on one bus."""

    def __init__(
        self, services: list[ServiceDefinition[Any]], settings: Settings, rules: Rules, clock: Clock, bus: Bus
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.bus = bus
        self.contexts: list[ServiceContext[Any]] = []
        self.definitions = services
        self._tasks: list[asyncio.Task[None]] = []
        for svc in services:
            db = None
            relay = None
            if svc.base is not None:
                db = Database(
                    service_url(settings.database_url, settings.data_dir, svc.name),
                    schema_name(svc.name, settings.schema_prefix),
                    svc.base.metadata,
                    connect_timeout=settings.db_connect_timeout_seconds,
                    command_timeout=settings.db_command_timeout_seconds,
                )
                relay = OutboxRelay(svc.name, db, bus, settings.outbox_poll_seconds, settings.outbox_batch_size)
            parts = ServiceContext(
                name=svc.name, settings=settings, rules=rules, clock=clock, bus=bus, db=db, relay=relay, resources=None
            )
            # The resources are built from the parts; the context is a shallow copy of the parts (the
            # same events, workers, database and relay), so what a resource holds of them is its own.
            ctx: ServiceContext[Any] = dataclasses.replace(parts, resources=svc.resources(parts))
            for sub in svc.subscriptions:
                assert db is not None, f"{svc.name} consumes events but has no database"
                ctx.workers.append(
                    ConsumerWorker(
                        group=sub.group,
                        topics=sub.topics,
                        bus=bus,
                        units=ctx.units,
                        prefetch=functools.partial(sub.prefetch, ctx),
                        handlers=sub.handlers,
                        max_records=settings.consumer_max_records,
                        fetch_timeout_ms=settings.consumer_fetch_timeout_ms,
                        stall_seconds=settings.consumer_stall_seconds,
                        retry_max_seconds=settings.consumer_retry_max_seconds,
                        dead_letters=DeadLetterPolicy(
                            max_share=settings.dlq_max_share,
                            window=settings.dlq_window,
                            min_records=settings.dlq_min_records,
                        ),
                    )
                )
            self.contexts.append(ctx)

    async def start(self) -> None:
        """Start the bus and each service. A dependency that is down does not stop the start: the
        Kafka bus keeps connecting in the background, and a service whose database cannot be
        reached keeps trying to migrate it, then starts its relay, consumers and jobs; its routes
        answer 503 meanwhile and ``/readyz`` says why."""
        await self.bus.start()
        for svc, ctx in zip(self.definitions, self.contexts, strict=True):
            try:
                await self._migrate(svc, ctx)
            except Unavailable as exc:
                log.warning("database_unreachable_at_start", service=svc.name, error=str(exc), retrying=True)
                self._tasks.append(asyncio.create_task(self._start_when_reachable(svc, ctx), name=f"{svc.name}:up"))
                continue
            self._start_service(svc, ctx)
        log.info("runtime_started", services=[c.name for c in self.contexts])

    async def _migrate(self, svc: ServiceDefinition[Any], ctx: ServiceContext[Any]) -> None:
        if ctx.db is not None and svc.migrations is not None:
            await migrate(ctx.db, svc.migrations)

    async def _start_when_reachable(self, svc: ServiceDefinition[Any], ctx: ServiceContext[Any]) -> None:
        delay = 0.5
        while not ctx.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.stopping.wait(), timeout=delay)
            if ctx.stopping.is_set():
                return
            try:
                await self._migrate(svc, ctx)
            except Unavailable as exc:
                delay = min(delay * 2, 5.0)
                log.info("database_still_unreachable", service=svc.name, error=str(exc), retry_in=delay)
                continue
            log.info("database_reachable", service=svc.name)
            self._start_service(svc, ctx)
            return

    def _start_service(self, svc: ServiceDefinition[Any], ctx: ServiceContext[Any]) -> None:
        if ctx.relay is not None:
            ctx.relay.start()
        for worker in ctx.workers:
            worker.start()
        for job in svc.background:
            self._tasks.append(asyncio.create_task(job(ctx), name=f"{svc.name}:{job.__name__}"))
        ctx.up.set()

    async def stop(self) -> None:
        """Graceful: finish the batch in hand, commit, drain the outboxes, close the bus."""
        for ctx in self.contexts:
            ctx.stopping.set()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=10)
            stuck = await cancel_and_wait(pending)
            if stuck:
                log.error(
                    "tasks_did_not_stop", tasks=sorted(t.get_name() for t in stuck if isinstance(t, asyncio.Task))
                )
        for ctx in self.contexts:
            await asyncio.gather(*(w.stop() for w in ctx.workers), return_exceptions=True)
        for ctx in self.contexts:
            if ctx.relay is not None:
                await ctx.relay.stop()
        await self.bus.stop()
        for ctx in self.contexts:
            if ctx.db is not None:
                await ctx.db.dispose()
        log.info("runtime_stopped")

    def ready(self, checks: dict[str, str]) -> bool:
        """Every check ok; except that services which spool events (intake) need the broker or their
        database, not both: with the broker down they accept into the spool, with the database down
        they publish directly."""
        failing = {name for name, v in checks.items() if v != "ok"}
        if self.definitions and all(svc.spools_events for svc in self.definitions):
            databases = {f"{ctx.name}.database" for ctx in self.contexts if ctx.db is not None}
            if "bus" in failing and not failing & databases:
                failing.discard("bus")
            elif "bus" not in failing:
                failing -= databases
        return not failing

    async def readiness(self) -> dict[str, Any]:
        """Each service's database and the bus reachable, and every consumer making progress."""
        checks: dict[str, Any] = {}
        try:
            await within(3, self.bus.ping())
            checks["bus"] = "ok"
        except Exception as exc:
            checks["bus"] = f"unreachable: {exc!r}"
        for ctx in self.contexts:
            if ctx.db is not None:
                try:
                    await within(3, ctx.db.ping())
                    checks[f"{ctx.name}.database"] = "ok"
                except Exception as exc:
                    checks[f"{ctx.name}.database"] = f"unreachable: {exc!r}"
            for w in ctx.workers:
                checks[f"{ctx.name}.consumer.{w.group}"] = w.health.describe()
        for svc, ctx in zip(self.definitions, self.contexts, strict=True):
            if ctx.db is not None and not ctx.up.is_set() and checks.get(f"{ctx.name}.database") == "ok":
                checks[f"{ctx.name}.database"] = "reachable, not migrated yet"
            if svc.checks is not None:
                checks.update(svc.checks(ctx))
        return checks

    async def lag(self) -> dict[str, int | None]:
        """Records not yet committed, per consumer group (None while a consumer is not running)."""
        return {w.group: await w.lag() for ctx in self.contexts for w in ctx.workers}

    async def pending_outbox(self) -> dict[str, int]:
        """Events written but not yet relayed, per service."""
        return {ctx.name: await ctx.relay.pending() for ctx in self.contexts if ctx.relay is not None}

    async def settled(self) -> bool:
        """Every consumer has committed everything and every outbox is empty."""
        lags = await self.lag()
        if any(v is None or v > 0 for v in lags.values()):
            return False
        for ctx in self.contexts:
            if ctx.relay is not None:
                await ctx.relay.drain()
        return not any((await self.pending_outbox()).values())

    async def wait_settled(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not await self.settled():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"not settled after {timeout}s: lag {await self.lag()}, outbox {await self.pending_outbox()}"
                )
            await asyncio.sleep(0.05)
