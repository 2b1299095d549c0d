"""Intake's definition: routes by way in (its forms, its behaviour events, the connectors: other
tools' form shapes and the tracking API), its CORS policy, and its spool (a database and a relay, so that it keeps accepting events while the broker
is down); it consumes nothing."""

from pathlib import Path

from fastapi import APIRouter
from starlette.middleware import Middleware

from intake import api
from intake.connectors import api as connectors_api
from intake.connectors.tracking import build_tracking_router
from intake.cors import Cors
from intake.forms import api as forms_api
from intake.models import Base
from intake.resources import IntakeContext, build_resources
from intake.spool import measure_spool, spool_checks
from leadrelay.runtime import ServiceDefinition


def build_router(ctx: IntakeContext) -> APIRouter:
    """The form routes, the behaviour-event route, the tracking API, and the HubSpot and Web-to-Lead
    shapes (``intake.connectors``)."""
    router = forms_api.build_router(ctx)
    router.include_router(api.build_router(ctx))
    router.include_router(build_tracking_router(ctx))
    router.include_router(connectors_api.build_router(ctx))
    return router


def _cors(ctx: IntakeContext) -> Middleware:
    return Middleware(Cors, rules=ctx.rules)


SERVICE = ServiceDefinition(
    name="intake",
    router=build_router,
    resources=build_resources,
    middleware=_cors,
    base=Base,
    migrations=Path(__file__).parent / "migrations",
    background=[measure_spool],
    spools_events=True,
    checks=spool_checks,
)
