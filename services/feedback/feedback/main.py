"""Feedback's definition: consumes assignments, takes touches and dispositions over HTTP."""

from pathlib import Path

from feedback import consumers
from feedback.api import build_router
from feedback.models import Base
from leadrelay.events import LEADS_ASSIGNED
from leadrelay.runtime import ServiceDefinition, Subscription

SERVICE = ServiceDefinition(
    name="feedback",
    router=build_router,
    base=Base,
    migrations=Path(__file__).parent / "migrations",
    subscriptions=[
        Subscription(
            group="feedback", topics=[LEADS_ASSIGNED], prefetch=consumers.prefetch, handlers=consumers.HANDLERS
        )
    ],
)
