"""Alembic environment of the routing schema (run by Leadrelay at start-up, on its own connection)."""

from leadrelay.migrations_env import run
from routing.models import Base

run(Base.metadata)
