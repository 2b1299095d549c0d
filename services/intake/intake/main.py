"""Intake's definition: routes only; it keeps no state and consumes nothing."""

from intake.api import build_router
from leadrelay.runtime import ServiceDefinition

SERVICE = ServiceDefinition(name="intake", router=build_router)
