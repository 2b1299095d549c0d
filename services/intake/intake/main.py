"""Intake's definition: routes and its CORS policy; it keeps no state and consumes nothing."""

from fastapi import APIRouter
from starlette.middleware import Middleware

from intake import api, formats
from intake.cors import Cors
from leadrelay.runtime import ServiceContext, ServiceDefinition


def build_router(ctx: ServiceContext) -> APIRouter:
    """Intake's own routes, and the HubSpot and Web-to-Lead shapes (``intake.formats``)."""
    router = api.build_router(ctx)
    router.include_router(formats.build_router(ctx))
    return router


def _cors(ctx: ServiceContext) -> Middleware:
    return Middleware(Cors, rules=ctx.rules)


SERVICE = ServiceDefinition(name="intake", router=build_router, middleware=_cors)
