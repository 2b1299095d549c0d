"""A minimal service schema for tests of the shared library: its own metadata, inbox and outbox."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from leadrelay.db import InboxMixin, OutboxMixin, service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata()


class Inbox(InboxMixin, Base):
    pass


class Outbox(OutboxMixin, Base):
    pass
