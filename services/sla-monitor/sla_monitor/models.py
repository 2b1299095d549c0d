"""sla-monitor's one schema: clocks (durable timers: a row with a due time), the alerts they raised,
feedback seen, each lead's latest assignment (the queue), and the notifications with their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from leadrelay.db import BigId, JsonType, UtcDateTime, service_metadata
from leadrelay.unit_of_work import add_inbox_and_outbox


class Base(DeclarativeBase):
    metadata = service_metadata()


# The inbox (events handled) and outbox (events to relay) every consuming service keeps.
add_inbox_and_outbox(Base)


class SlaClock(Base):
    __tablename__ = "clocks"
    __table_args__ = (
        UniqueConstraint("lead_id", "cycle", "name", name="uq_clocks_lead_cycle_name"),
        Index("ix_clocks_status_due", "status", "due_at"),
        Index("ix_clocks_status_warn", "status", "warn_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(String(64), index=True)
    cycle: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(40))
    rep_id: Mapped[str] = mapped_column(String(100))
    territory: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(20))  # running | met | breached
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The warning before the deadline (sla.warn_before): due at warn_at, fired once at warned_at.
    warn_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    warned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Alert(Base):
    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    clock_id: Mapped[int] = mapped_column(BigId, unique=True)  # one alert per deadline, ever
    lead_id: Mapped[str] = mapped_column(String(64), index=True)
    clock: Mapped[str] = mapped_column(String(40))
    cycle: Mapped[int] = mapped_column(Integer)
    rep_id: Mapped[str] = mapped_column(String(100))
    territory: Mapped[str] = mapped_column(String(100))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class FeedbackSeen(Base):
    """Touches and dispositions, kept so one that overtakes its assignment still stops the clock."""

    __tablename__ = "feedback_seen"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # touch | disposition
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    detail: Mapped[str | None] = mapped_column(String(20))  # the disposition (accepted, recycle...)


class QueuedLead(Base):
    """Each lead's latest assignment: as its rep's queue shows it (GET /v1/me/leads: the handoff
    summary, the deadlines, and what sales has done since), and who the lead is for the
    notifications about it (the contact, the qualification, the cycle and territory)."""

    __tablename__ = "queue"
    __table_args__ = (
        Index("ix_queue_open_rep", "open", "rep_id"),
        Index("ix_queue_open_territory", "open", "territory"),
    )
    lead_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cycle: Mapped[int] = mapped_column(Integer)
    rep_id: Mapped[str] = mapped_column(String(100))
    territory: Mapped[str] = mapped_column(String(100))
    qualification: Mapped[str | None] = mapped_column(String(20))
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime())
    first_touch_due: Mapped[datetime] = mapped_column(UtcDateTime())
    disposition_due: Mapped[datetime] = mapped_column(UtcDateTime())
    handoff: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # The handoff's score and whole contact (None for assignments the notifications never saw).
    score: Mapped[int | None] = mapped_column(Integer)
    contact: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    touches: Mapped[int] = mapped_column(Integer, default=0)
    first_touch_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_touch_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    disposition: Mapped[str | None] = mapped_column(String(20))
    disposition_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    open: Mapped[bool] = mapped_column(Boolean, default=True)  # false once recycled, junk or unreachable


class Notification(Base):
    """Something people are told of (lead.assigned, sla.warning, sla.breached, lead.recycled), once."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # e.g. sla.breached:<lead>:<cycle>:<clock>
    type: Mapped[str] = mapped_column(String(40))
    lead_id: Mapped[str] = mapped_column(String(64), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JsonType)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    deliveries: Mapped[list[Delivery]] = relationship(back_populates="notification")


class Delivery(Base):
    """One notification to one endpoint (a webhook, a Slack webhook, an e-mail address): the outbox
    row the delivery job sends, retries and logs. Written in the transaction that decided to notify."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "endpoint", name="uq_deliveries_notification_endpoint"),
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    endpoint: Mapped[str] = mapped_column(String(400))  # webhook:<id> | slack:<id> | email:<address>
    channel: Mapped[str] = mapped_column(String(20))  # webhook | slack | email
    lane: Mapped[str] = mapped_column(String(200))  # concurrency pool: the endpoint, or smtp for all e-mail
    recipient: Mapped[str | None] = mapped_column(String(320))  # e-mail address
    recipient_name: Mapped[str | None] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(64), unique=True)  # webhook-id, the same on every attempt
    status: Mapped[str] = mapped_column(String(20))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    retry_until: Mapped[datetime] = mapped_column(UtcDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_status: Mapped[int | None] = mapped_column(Integer)  # HTTP status or SMTP reply code
    last_error: Mapped[str | None] = mapped_column(Text())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    notification: Mapped[Notification] = relationship(back_populates="deliveries")
