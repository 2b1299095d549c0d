"""sla-monitor's resources: built once when the runtime is built (the notification endpoints are
resolved against the environment then, so a missing secret stops the start), shared, typed, by its
routes, handlers and jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from leadrelay.runtime import ServiceContext
from sla_monitor.notify.notifier import Notifier


@dataclass(frozen=True)
class SlaResources:
    notifier: Notifier


SlaContext: TypeAlias = ServiceContext[SlaResources]


def build_resources(ctx: ServiceContext[None]) -> SlaResources:
    return SlaResources(notifier=Notifier(ctx.rules, ctx.settings))
