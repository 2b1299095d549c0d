"""The one way to write: a unit of work is one transaction (the session for state, plus the events
to write to the outbox with it); once it commits, every sender that got rows from it is woken.

API routes, consumers and background jobs alike open one with :meth:`UnitsOfWork.begin` (a
service reaches it as ``ctx.unit_of_work()``). The outbox relay is woken when the unit of work
wrote outbox rows; any other sender (the notifier's delivery job) registers itself with
:meth:`UnitOfWork.wake_after_commit` when it writes rows for it. Nothing is woken for a unit of
work that rolled back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from leadrelay import outbox
from leadrelay.clock import Clock
from leadrelay.db import Database
from leadrelay.events import Envelope
from leadrelay.inbox import InboxMixin


def add_inbox_and_outbox(base: type[DeclarativeBase]) -> None:
    """Map the ``inbox`` and ``outbox`` tables into a service's declarative base (its own metadata)."""
    type("Inbox", (InboxMixin, base), {})
    type("Outbox", (outbox.OutboxMixin, base), {})


@dataclass
class UnitOfWork:
    session: AsyncSession
    now: datetime
    outbox: Table
    emitted: list[Envelope] = field(default_factory=list)
    # Outbox rows written by this unit of work: the relay needs waking only if there are any.
    flushed: int = 0
    # Senders to wake once this unit of work commits (each once, in the order they registered).
    senders: list[Callable[[], None]] = field(default_factory=list)

    def emit(self, envelope: Envelope) -> None:
        self.emitted.append(envelope)

    def wake_after_commit(self, sender: Callable[[], None]) -> None:
        """Have ``sender`` called once this unit of work has committed (not if it rolls back)."""
        if sender not in self.senders:
            self.senders.append(sender)

    async def flush_outbox(self) -> None:
        self.flushed += await outbox.write(self.session, self.outbox, self.emitted, self.now)
        self.emitted.clear()


class UnitsOfWork:
    """Opens a service's units of work: commit state, inbox and outbox rows together or nothing,
    then wake the relay (if outbox rows were written) and every sender that registered."""

    def __init__(self, db: Database, clock: Clock, relay: outbox.OutboxRelay | None) -> None:
        self.db = db
        self.clock = clock
        self.relay = relay
        self.outbox = outbox.outbox_table(db)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[UnitOfWork]:
        async with self.db.transaction() as session:
            uow = UnitOfWork(session=session, now=self.clock.now(), outbox=self.outbox)
            yield uow
            await uow.flush_outbox()
        if uow.flushed and self.relay is not None:
            self.relay.wake()
        for wake in uow.senders:
            wake()
