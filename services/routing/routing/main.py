"""Routing's definition: consumes qualified leads and dispositions, serves assignments."""

from pathlib import Path

from leadrelay.runtime import ServiceDefinition
from routing import consumers
from routing.api import build_router
from routing.models import Base

SERVICE = ServiceDefinition(
    name="routing",
    router=build_router,
    base=Base,
    migrations=Path(__file__).parent / "migrations",
    subscriptions=[consumers.SUBSCRIPTION],
)
