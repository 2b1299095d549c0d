"""Scoring's state: one row per lead (profile, running score) and its activity history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from leadrelay.db import BigId, JsonType, UtcDateTime, service_metadata
from leadrelay.unit_of_work import add_inbox_and_outbox


class Base(DeclarativeBase):
    metadata = service_metadata()


# The inbox (events handled) and outbox (events to relay) every consuming service keeps.
add_inbox_and_outbox(Base)


class Lead(Base):
    __tablename__ = "leads"
    lead_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    contact: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    custom: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    status: Mapped[str] = mapped_column(String(20), index=True)
    fit: Mapped[int] = mapped_column(Integer, default=0)
    engagement: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[int] = mapped_column(Integer, default=0, index=True)
    reasons: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    # Per engagement rule: matching activities since `engagement_since` (kept incrementally,
    # so scoring an event never re-reads the lead's whole history).
    engagement_counts: Mapped[dict[str, int]] = mapped_column(JsonType, default=dict)
    handraised_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    engagement_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    qualification: Mapped[str | None] = mapped_column(String(20))
    qualified_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The owner (rep and territory of the latest assignment, from leads.assigned): who may see it.
    rep_id: Mapped[str | None] = mapped_column(String(100), index=True)
    territory: Mapped[str | None] = mapped_column(String(100), index=True)
    assigned_cycle: Mapped[int | None] = mapped_column(Integer)
    # The consent evidence given with its submissions (ConsentEvidence dicts, oldest first).
    consent: Mapped[list[Any] | None] = mapped_column(JsonType)


class Activity(Base):
    __tablename__ = "activities"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    url: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(String(200))


class Visitor(Base):
    """Someone known by a tracking id (``anonymous:<id>`` or ``user:<id>``) and, once joined, the
    lead it is. The activity handler and the join lock this row (FOR UPDATE on PostgreSQL), so an
    activity is either kept here and moved by the join, or credited to the lead: never both, never
    neither."""

    __tablename__ = "visitors"
    visitor: Mapped[str] = mapped_column(String(220), primary_key=True)
    lead_id: Mapped[str | None] = mapped_column(String(64), index=True)
    linked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class VisitorActivity(Base):
    """An activity of a visitor not joined to a lead yet; moved to ``activities`` by the join."""

    __tablename__ = "visitor_activities"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    visitor: Mapped[str] = mapped_column(String(220), index=True)
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    url: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(String(200))
