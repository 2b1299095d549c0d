"""Scoring's definition: consumes intake and feedback events, serves scores."""

from pathlib import Path

from leadrelay.events import LEADS_FEEDBACK, LEADS_INTAKE
from leadrelay.runtime import ServiceDefinition, Subscription
from scoring import consumers
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
            topics=[LEADS_INTAKE, LEADS_FEEDBACK],
            prefetch=consumers.prefetch,
            handlers=consumers.HANDLERS,
        )
    ],
)
