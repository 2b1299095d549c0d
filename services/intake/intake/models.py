"""Intake's state: only its spool, the events accepted while the broker could not store them.

The spool is an outbox (``leadrelay.outbox``) in intake's own schema, relayed to
the broker by the same relay the other services use; see ``intake.spool``.
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from leadrelay.db import service_metadata
from leadrelay.outbox import OutboxMixin


class Base(DeclarativeBase):
    metadata = service_metadata()


class Spool(OutboxMixin, Base):
    """Events accepted (answered 202) but not yet acknowledged by the broker, in the order accepted."""
