"""Alembic environment of the intake schema, its spool (run by Leadrelay at start-up, on its own connection)."""

from intake.models import Base
from leadrelay.migrations_env import run

run(Base.metadata)
