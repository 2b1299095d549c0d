"""SLA monitor's definition: consumes assignments and feedback, runs the deadline timer."""

from pathlib import Path

from leadrelay.runtime import ServiceDefinition
from sla_monitor import consumers, service
from sla_monitor.api import build_router
from sla_monitor.models import Base

SERVICE = ServiceDefinition(
    name="sla-monitor",
    router=build_router,
    base=Base,
    migrations=Path(__file__).parent / "migrations",
    subscriptions=[consumers.SUBSCRIPTION],
    background=[service.timer_loop],
)
