"""Alembic environment of the scoring schema (run by Leadrelay at start-up, on its own connection)."""

from leadrelay.migrations_env import run
from scoring.models import Base

run(Base.metadata)
