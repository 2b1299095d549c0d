"""SLA monitor's definition: consumes assignments and feedback, runs the deadline timer, and
notifies people (webhooks, Slack, e-mail) of handoffs, warnings, breaches and recycled leads.

Three capabilities, one schema: the SLA clocks (``sla_monitor.clocks``), the reps' queue
(``sla_monitor.queue``) and the notifications (``sla_monitor.notify``)."""

from pathlib import Path

from fastapi import APIRouter

from leadrelay.runtime import ServiceDefinition
from sla_monitor import consumers
from sla_monitor.clocks import api as clocks_api
from sla_monitor.clocks.service import timer_loop, warning_loop
from sla_monitor.models import Base
from sla_monitor.notify import api as notify_api
from sla_monitor.notify.delivery import delivery_loop
from sla_monitor.queue import api as queue_api
from sla_monitor.resources import SlaContext, build_resources


def routes(ctx: SlaContext) -> APIRouter:
    router = clocks_api.build_router(ctx)
    router.include_router(queue_api.build_router(ctx))
    router.include_router(notify_api.build_notifications_router(ctx))
    return router


SERVICE = ServiceDefinition(
    name="sla-monitor",
    router=routes,
    resources=build_resources,
    base=Base,
    migrations=Path(__file__).parent / "migrations",
    subscriptions=[consumers.SUBSCRIPTION],
    background=[timer_loop, warning_loop, delivery_loop],
)
