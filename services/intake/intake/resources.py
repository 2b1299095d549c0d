"""Intake's resources: built once when the runtime is built, shared, typed, by its routes (its forms',
its behaviour events', the connectors': other tools' form shapes and the tracking API), its
spool-measuring job and its readiness check."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TypeAlias

from intake.forms.screening import Screening
from intake.forms.service import FormPosts
from intake.service import Intake
from intake.spool import Spool
from leadrelay.runtime import ServiceContext


@dataclass(frozen=True)
class IntakeResources:
    spool: Spool
    screening: Screening
    # The use case every way in ends in: its rules, its bus and the spool.
    intake: Intake
    # A form post's use case: the screening, then ``intake``.
    form_posts: FormPosts


IntakeContext: TypeAlias = ServiceContext[IntakeResources]


def build_resources(ctx: ServiceContext[None]) -> IntakeResources:
    settings = ctx.settings
    spool = Spool(ctx.units, settings.intake_spool_max_events, ctx.up)
    intake = Intake(
        ctx.rules,
        uuid.UUID(settings.lead_id_namespace),
        ctx.clock,
        ctx.bus,
        spool=spool,
        always_spool=settings.intake_spool == "always",
        direct_timeout=settings.intake_direct_timeout_ms / 1000,
    )
    screening = Screening(settings)
    return IntakeResources(spool=spool, screening=screening, intake=intake, form_posts=FormPosts(intake, screening))
