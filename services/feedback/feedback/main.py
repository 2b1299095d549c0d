"""Feedback's definition: consumes assignments, takes touches and dispositions over HTTP."""

from pathlib import Path

from feedback import service
from feedback.api import build_router
from feedback.models import Base
from leadrelay.events import LEADS_ASSIGNED
from leadrelay.service import ServiceDefinition, Subscription

SERVICE = ServiceDefinition(
    name="feedback",
    router=build_router,
    base=Base,
    migrations=Path(__file__).parent / "migrations",
    subscriptions=[
        Subscription(group="feedback", topics=[LEADS_ASSIGNED], handler=service.handle, prefetch=service.prefetch)
    ],
)
