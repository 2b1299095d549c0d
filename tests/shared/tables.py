"""A minimal service for tests of the shared library: its own metadata, inbox and outbox, and a
consumer worker that hands every event to one function."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import DeclarativeBase

from leadrelay.bus import Bus
from leadrelay.clock import SystemClock
from leadrelay.consumers import Handlers
from leadrelay.db import Database, service_metadata
from leadrelay.events import EVENT_TYPES, Envelope, Event
from leadrelay.inbox import InboxMixin
from leadrelay.outbox import OutboxMixin
from leadrelay.unit_of_work import UnitOfWork, UnitsOfWork
from leadrelay.worker import ConsumerWorker


class Base(DeclarativeBase):
    metadata = service_metadata()


class Inbox(InboxMixin, Base):
    pass


class Outbox(OutboxMixin, Base):
    pass


@dataclass
class EveryEvent:
    """A test consumer's batch: its unit of work and, for each payload, its envelope (event id...)."""

    uow: UnitOfWork
    envelopes: dict[int, Envelope]

    def envelope(self, data: Event) -> Envelope:
        return self.envelopes[id(data)]


HandleFn = Callable[[UnitOfWork, Envelope], Awaitable[None]]


def make_worker(
    *, group: str, topics: Sequence[str], bus: Bus, db: Database, handle: HandleFn, **options: Any
) -> ConsumerWorker[EveryEvent]:
    """A worker that hands every event on ``topics`` to ``handle(uow, envelope)``."""

    async def prefetch(uow: UnitOfWork, envelopes: list[Envelope]) -> EveryEvent:
        return EveryEvent(uow=uow, envelopes={id(env.data): env for env in envelopes})

    async def one(batch: EveryEvent, data: Event) -> None:
        await handle(batch.uow, batch.envelope(data))

    handlers = Handlers[EveryEvent]()
    for model in EVENT_TYPES.values():
        if model.TOPIC in topics:
            handlers.on(model, one)
    return ConsumerWorker(
        group=group,
        topics=topics,
        bus=bus,
        units=UnitsOfWork(db, options.pop("clock", SystemClock()), options.pop("relay", None)),
        prefetch=prefetch,
        handlers=handlers,
        **options,
    )
