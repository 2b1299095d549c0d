"""Scoring's definition: consumes intake and feedback events (and assignments, to know each
lead's owner), serves scores."""

from pathlib import Path

from leadrelay.events import LEADS_ASSIGNED, LEADS_FEEDBACK, LEADS_INTAKE
from leadrelay.service import ServiceDefinition, Subscription
from scoring import service
from scoring.api import build_router
from scoring.models import Base

SERVICE = ServiceDefinition(
    name="scoring",
    router=build_router,
    base=Base,
    migrations=Path(__file__).parent / "migrations",
    subscriptions=[
        Subscription(
            group="scoring",
            topics=[LEADS_INTAKE, LEADS_FEEDBACK, LEADS_ASSIGNED],
            handler=service.handle,
            prefetch=service.prefetch,
        )
    ],
)
