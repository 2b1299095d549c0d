"""SLA monitor's HTTP routes: a lead's clocks and alerts, and the alert feed ops watches."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import select

from leadrelay.contract import Since
from leadrelay.service import ServiceContext
from sla_monitor.models import Alert, SlaClock


class ClockOut(BaseModel):
    name: str
    cycle: int
    rep_id: str
    started_at: datetime
    due_at: datetime
    status: str
    stopped_at: datetime | None


class AlertOut(BaseModel):
    lead_id: str
    clock: str
    cycle: int
    rep_id: str
    territory: str
    due_at: datetime
    raised_at: datetime


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


def build_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["sla"])

    @router.get("/v1/leads/{lead_id}/sla", response_model=LeadSla)
    async def lead_sla(lead_id: uuid.UUID) -> LeadSla:
        async with ctx.database.transaction() as session:
            clocks = (
                (
                    await session.execute(
                        select(SlaClock).where(SlaClock.lead_id == str(lead_id)).order_by(SlaClock.cycle, SlaClock.id)
                    )
                )
                .scalars()
                .all()
            )
            alerts = (
                (await session.execute(select(Alert).where(Alert.lead_id == str(lead_id)).order_by(Alert.id)))
                .scalars()
                .all()
            )
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
                )
                for c in clocks
            ],
            alerts=[_alert(a) for a in alerts],
        )

    @router.get("/v1/alerts", response_model=list[AlertOut])
    async def alerts(
        since: Annotated[Since | None, Query(description="only alerts raised after this time")] = None,
        territory: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AlertOut]:
        """Breached deadlines, newest first: the feed ops acts on."""
        query = select(Alert).order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit)
        if since is not None:
            query = query.where(Alert.raised_at > since)
        if territory is not None:
            query = query.where(Alert.territory == territory)
        async with ctx.database.transaction() as session:
            return [_alert(a) for a in (await session.execute(query)).scalars()]

    return router
