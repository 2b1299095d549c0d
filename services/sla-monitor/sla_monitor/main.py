"""SLA monitor's definition: consumes assignments and feedback, runs the deadline timer."""

from pathlib import Path

from leadrelay.events import LEADS_ASSIGNED, LEADS_FEEDBACK
from leadrelay.service import ServiceDefinition, Subscription
from sla_monitor import service
from sla_monitor.api import build_router
from sla_monitor.models import Base

SERVICE = ServiceDefinition(
    name="sla-monitor",
    router=build_router,
    base=Base,
    migrations=Path(__file__).parent / "migrations",
    subscriptions=[
        Subscription(
            group="sla-monitor",
            topics=[LEADS_ASSIGNED, LEADS_FEEDBACK],
            handler=service.handle,
            prefetch=service.prefetch,
        )
    ],
    background=[service.timer_loop],
)
