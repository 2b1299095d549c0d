"""Feedback's state: the leads handed to sales (learned from assignments), touches and dispositions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from leadrelay.db import BigId, UtcDateTime, service_metadata
from leadrelay.unit_of_work import add_inbox_and_outbox


class Base(DeclarativeBase):
    metadata = service_metadata()


# The inbox (events handled) and outbox (events to relay) every consuming service keeps.
add_inbox_and_outbox(Base)


class HandedOver(Base):
    """One row per lead sales has (or had): the latest assignment and what sales did with it."""

    __tablename__ = "handed_over"
    lead_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cycle: Mapped[int] = mapped_column(Integer)
    rep_id: Mapped[str] = mapped_column(String(100), index=True)
    territory: Mapped[str] = mapped_column(String(100))
    qualification: Mapped[str] = mapped_column(String(20))
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    first_touch_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    touches: Mapped[int] = mapped_column(Integer, default=0)
    disposition: Mapped[str | None] = mapped_column(String(20))
    disposition_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Touch(Base):
    __tablename__ = "touches"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    lead_id: Mapped[str] = mapped_column(String(64), index=True)
    cycle: Mapped[int] = mapped_column(Integer)
    rep_id: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    touched_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # Who logged it (the rep, or someone acting for the rep): the audit trail.
    actor_kind: Mapped[str | None] = mapped_column(String(10))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    actor_role: Mapped[str | None] = mapped_column(String(20))


class DispositionRow(Base):
    __tablename__ = "dispositions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    lead_id: Mapped[str] = mapped_column(String(64), index=True)
    cycle: Mapped[int] = mapped_column(Integer)
    rep_id: Mapped[str] = mapped_column(String(100))
    disposition: Mapped[str] = mapped_column(String(20), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor_kind: Mapped[str | None] = mapped_column(String(10))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    actor_role: Mapped[str | None] = mapped_column(String(20))
