"""The one :class:`~intake.service.Intake` of a running intake service, shared by all its routes
(its own, the tracking API's, other tools' form shapes): its rules, its bus and its spool."""

from __future__ import annotations

import uuid

from intake.service import Intake, NotStored
from intake.spool import spool_of
from leadrelay.runtime import ServiceContext
from leadrelay.unavailable import Unavailable


def intake_for(ctx: ServiceContext) -> Intake:
    intake = ctx.state.get("intake")
    if intake is None:
        settings = ctx.settings
        intake = Intake(
            ctx.rules,
            uuid.UUID(settings.lead_id_namespace),
            ctx.clock,
            ctx.bus,
            spool=spool_of(ctx),
            always_spool=settings.intake_spool == "always",
            direct_timeout=settings.intake_direct_timeout_ms / 1000,
        )
        ctx.state["intake"] = intake
    assert isinstance(intake, Intake)
    return intake


def unavailable(exc: NotStored) -> Unavailable:
    """The 503 of an event neither the broker nor the spool stored, naming what could not be reached."""
    return Unavailable(exc.dependency, repr(exc.__cause__), public=str(exc).removesuffix("; retry later"))
