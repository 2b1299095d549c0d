"""Feedback's definition: consumes assignments, takes touches and dispositions over HTTP."""

from pathlib import Path

from feedback import consumers
from feedback.api import build_router
from feedback.models import Base
from leadrelay.runtime import ServiceDefinition

SERVICE = ServiceDefinition(
    name="feedback",
    router=build_router,
    base=Base,
    migrations=Path(__file__).parent / "migrations",
    subscriptions=[consumers.SUBSCRIPTION],
)
