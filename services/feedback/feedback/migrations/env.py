"""Alembic environment of the feedback schema (run by Leadrelay at start-up, on its own connection)."""

from feedback.models import Base
from leadrelay.migrations_env import run

run(Base.metadata)
