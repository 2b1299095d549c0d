"""Scoring's definition: consumes intake and feedback events (and assignments, to know each
lead's owner), serves scores."""

from pathlib import Path

from leadrelay.runtime import ServiceDefinition
from scoring import consumers
from scoring.api import build_router
from scoring.models import Base

SERVICE = ServiceDefinition(
    name="scoring",
    router=build_router,
    base=Base,
    migrations=Path(__file__).parent / "migrations",
    subscriptions=[consumers.SUBSCRIPTION],
)
