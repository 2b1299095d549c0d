"""Intake's definition: routes and its CORS policy; it keeps no state and consumes nothing."""

from starlette.middleware import Middleware

from intake.api import build_router
from intake.cors import Cors
from leadrelay.runtime import ServiceContext, ServiceDefinition


def _cors(ctx: ServiceContext) -> Middleware:
    return Middleware(Cors, rules=ctx.rules)


SERVICE = ServiceDefinition(name="intake", router=build_router, middleware=_cors)
