"""Alembic environment of the sla-monitor schema (run by Leadrelay at start-up, on its own connection)."""

from leadrelay.migrations_env import run
from sla_monitor.models import Base

run(Base.metadata)
