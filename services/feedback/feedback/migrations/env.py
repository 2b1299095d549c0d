"""Alembic environment of the feedback schema (run by Leadrelay at start-up, on its own connection)."""

from leadrelay.migrations_env import run

from feedback.models import Base

run(Base.metadata)
