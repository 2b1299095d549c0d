"""SLA monitor's definition: consumes assignments and feedback, runs the deadline timer, and
notifies people (webhooks, Slack, e-mail) of handoffs, warnings, breaches and recycled leads."""

from pathlib import Path

from fastapi import APIRouter

from leadrelay.runtime import ServiceDefinition
from sla_monitor import consumers, service
from sla_monitor.api import build_router
from sla_monitor.delivery import delivery_loop
from sla_monitor.models import Base
from sla_monitor.notifications import warning_loop
from sla_monitor.notifications_api import build_notifications_router
from sla_monitor.resources import SlaContext, build_resources


def routes(ctx: SlaContext) -> APIRouter:
    router = build_router(ctx)
    router.include_router(build_notifications_router(ctx))
    return router


SERVICE = ServiceDefinition(
    name="sla-monitor",
    router=routes,
    resources=build_resources,
    base=Base,
    migrations=Path(__file__).parent / "migrations",
    subscriptions=[consumers.SUBSCRIPTION],
    background=[service.timer_loop, warning_loop, delivery_loop],
)
