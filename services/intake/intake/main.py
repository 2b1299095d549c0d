"""Intake's definition: routes only; it keeps no state and consumes nothing."""

from leadrelay.service import ServiceDefinition

from intake.api import build_router

SERVICE = ServiceDefinition(name="intake", router=build_router)
