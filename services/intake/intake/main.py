"""Intake's definition: routes, and its spool (a database and a relay, so that it keeps accepting
events while the broker is down); it consumes nothing."""

from pathlib import Path

from intake.api import build_router
from intake.models import Base
from intake.spool import measure_spool, spool_checks
from leadrelay.runtime import ServiceDefinition

SERVICE = ServiceDefinition(
    name="intake",
    router=build_router,
    base=Base,
    migrations=Path(__file__).parent / "migrations",
    background=[measure_spool],
    spools_events=True,
    checks=spool_checks,
)
