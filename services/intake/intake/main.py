"""Intake's definition: routes only; it keeps no state and consumes nothing."""

from fastapi import APIRouter

from intake import api, formats
from leadrelay.runtime import ServiceContext, ServiceDefinition


def build_router(ctx: ServiceContext) -> APIRouter:
    """Intake's own routes, and the HubSpot and Web-to-Lead shapes (``intake.formats``)."""
    router = api.build_router(ctx)
    router.include_router(formats.build_router(ctx))
    return router


SERVICE = ServiceDefinition(name="intake", router=build_router)
