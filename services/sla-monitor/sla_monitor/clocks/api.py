"""The SLA clocks' routes: a lead's clocks and alerts, the alert feed ops watches, the attainment,
and the deadlines of the rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from leadrelay.auth import LEAD_READERS, PEOPLE, Principal, allow
from leadrelay.contract import Since, TerritoryId
from leadrelay.rules import SlaPolicy
from sla_monitor.clocks import repository
from sla_monitor.clocks.domain import attainment
from sla_monitor.models import Alert

if TYPE_CHECKING:
    from sla_monitor.resources import SlaContext


class ClockOut(BaseModel):
    name: str
    cycle: int
    rep_id: str
    started_at: datetime
    due_at: datetime
    status: str
    stopped_at: datetime | None
    warned_at: datetime | None = None  # when the rep was warned of the deadline (sla.warn_before)


class AlertOut(BaseModel):
    lead_id: str
    clock: str
    cycle: int
    rep_id: str
    territory: str
    due_at: datetime
    raised_at: datetime


class DeadlineOutcomes(BaseModel):
    met: int
    breached: int
    running: int
    attainment: float | None = Field(description="the share met of the deadlines decided; null while none is")


class SlaAttainment(BaseModel):
    first_touch: DeadlineOutcomes
    disposition: DeadlineOutcomes


class SlaPolicyOut(BaseModel):
    first_touch_seconds: int
    disposition_seconds: int


class SlaPolicies(BaseModel):
    handraiser: SlaPolicyOut
    mql: SlaPolicyOut


class LeadSla(BaseModel):
    lead_id: str
    clocks: list[ClockOut]
    alerts: list[AlertOut]


def _alert(a: Alert) -> AlertOut:
    return AlertOut(
        lead_id=a.lead_id,
        clock=a.clock,
        cycle=a.cycle,
        rep_id=a.rep_id,
        territory=a.territory,
        due_at=a.due_at,
        raised_at=a.raised_at,
    )


def build_router(ctx: SlaContext) -> APIRouter:
    router = APIRouter(tags=["sla"])

    @router.get("/v1/leads/{lead_id}/sla", response_model=LeadSla)
    async def lead_sla(lead_id: uuid.UUID, who: Annotated[Principal, Depends(allow(*LEAD_READERS))]) -> LeadSla:
        async with ctx.database.read() as session:
            clocks = await repository.lead_clocks(session, str(lead_id))
            alerts = await repository.lead_alerts(session, str(lead_id))
        owner = clocks[-1] if clocks else None  # ordered by cycle: the latest assignment's rep
        who.check_lead(lead_id, owner.rep_id if owner else None, owner.territory if owner else None)
        if not clocks:
            raise HTTPException(404, f"lead {lead_id} has no SLA clock (not assigned yet)")
        return LeadSla(
            lead_id=str(lead_id),
            clocks=[
                ClockOut(
                    name=c.name,
                    cycle=c.cycle,
                    rep_id=c.rep_id,
                    started_at=c.started_at,
                    due_at=c.due_at,
                    status=c.status,
                    stopped_at=c.stopped_at,
                    warned_at=c.warned_at,
                )
                for c in clocks
            ],
            alerts=[_alert(a) for a in alerts],
        )

    @router.get("/v1/alerts", response_model=list[AlertOut])
    async def alerts(
        who: Annotated[Principal, Depends(allow(*PEOPLE))],
        since: Annotated[Since | None, Query(description="only alerts raised after this time")] = None,
        territory: Annotated[TerritoryId | None, Query(description="only this territory's leads")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AlertOut]:
        """Breached deadlines, newest first: the feed ops acts on. A rep sees their own, a manager
        their territories'."""
        who.check_territory(territory, ctx.rules)
        async with ctx.database.read() as session:
            return [_alert(a) for a in await repository.alerts(session, who, since, territory, limit)]

    @router.get("/v1/metrics/sla", response_model=SlaAttainment)
    async def sla_attainment(
        who: Annotated[Principal, Depends(allow(*PEOPLE))],
        since: Annotated[Since | None, Query(description="deadlines of assignments made at or after this time")] = None,
        territory: Annotated[TerritoryId | None, Query(description="only this territory's leads")] = None,
    ) -> SlaAttainment:
        """SLA attainment per deadline (first touch, disposition): met, breached, still running, and
        the share met of those decided; over a rep's own leads, a manager's territories', or all."""
        who.check_territory(territory, ctx.rules)
        async with ctx.database.read() as session:
            counts = await repository.clock_outcomes(session, who, since, territory)
        return SlaAttainment.model_validate(attainment(counts))

    @router.get("/v1/sla-policy", response_model=SlaPolicies, dependencies=[Depends(allow(*LEAD_READERS))])
    async def sla_policy() -> SlaPolicies:
        """The deadlines of the rules, per qualification, in seconds after the assignment."""

        def seconds(p: SlaPolicy) -> SlaPolicyOut:
            return SlaPolicyOut(
                first_touch_seconds=int(p.first_touch.total_seconds()),
                disposition_seconds=int(p.disposition.total_seconds()),
            )

        return SlaPolicies(handraiser=seconds(ctx.rules.sla.handraiser), mql=seconds(ctx.rules.sla.mql))

    return router
