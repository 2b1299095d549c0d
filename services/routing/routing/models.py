"""Routing's state: assignments (the suppression list is the active ones) and round-robin cursors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from leadrelay.db import BigId, JsonType, UtcDateTime, service_metadata
from leadrelay.unit_of_work import add_inbox_and_outbox


class Base(DeclarativeBase):
    metadata = service_metadata()


# The inbox (events handled) and outbox (events to relay) every consuming service keeps.
add_inbox_and_outbox(Base)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("lead_id", "cycle", name="uq_assignments_lead_cycle"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(String(64), index=True)
    cycle: Mapped[int] = mapped_column(Integer)
    rep_id: Mapped[str] = mapped_column(String(100), index=True)
    territory: Mapped[str] = mapped_column(String(100))
    matched_by: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)  # active | released
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    release_reason: Mapped[str | None] = mapped_column(String(40))
    handoff: Mapped[dict[str, Any]] = mapped_column(JsonType)


class Cursor(Base):
    """Where round robin continues in each territory."""

    __tablename__ = "cursors"
    territory: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class RepAvailability(Base):
    """A rep's availability set at run time (PUT /v1/reps/{rep_id}/availability): it overrides the
    rules' ``available`` until ``until`` (or until changed again)."""

    __tablename__ = "rep_availability"
    rep_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))  # available | away | out_of_office
    until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    set_by: Mapped[str] = mapped_column(String(100))
    set_by_role: Mapped[str] = mapped_column(String(20))
    set_at: Mapped[datetime] = mapped_column(UtcDateTime())
