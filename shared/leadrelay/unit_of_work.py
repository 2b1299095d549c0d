"""One transaction: the session for state, plus the events to write to the outbox with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from leadrelay import outbox
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

    def emit(self, envelope: Envelope) -> None:
        self.emitted.append(envelope)

    async def flush_outbox(self) -> None:
        self.flushed += await outbox.write(self.session, self.outbox, self.emitted, self.now)
        self.emitted.clear()


@asynccontextmanager
async def unit_of_work(db: Database, now: datetime) -> AsyncIterator[UnitOfWork]:
    """Commit state, inbox and outbox rows together, or nothing."""
    async with db.transaction() as session:
        uow = UnitOfWork(session=session, now=now, outbox=outbox.outbox_table(db))
        yield uow
        await uow.flush_outbox()
