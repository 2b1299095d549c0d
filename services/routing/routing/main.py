"""Routing's definition: consumes qualified leads and dispositions, serves assignments."""

from pathlib import Path

from leadrelay.events import LEADS_FEEDBACK, LEADS_SCORED
from leadrelay.runtime import ServiceDefinition, Subscription
from routing import consumers
from routing.api import build_router
from routing.models import Base

SERVICE = ServiceDefinition(
    name="routing",
    router=build_router,
    base=Base,
    migrations=Path(__file__).parent / "migrations",
    subscriptions=[
        Subscription(
            group="routing",
            topics=[LEADS_SCORED, LEADS_FEEDBACK],
            prefetch=consumers.prefetch,
            handlers=consumers.HANDLERS,
        )
    ],
)
