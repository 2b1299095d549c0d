"""Feedback's HTTP routes: what reps (or the CRM) report, the lead review board, closed-loop metrics."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from feedback import service
from feedback.domain import REASON_REQUIRED
from feedback.models import DispositionRow, HandedOver, Touch
from leadrelay.contract import RepId, Since
from leadrelay.db import UnitOfWork
from leadrelay.events import Channel, Disposition
from leadrelay.service import ServiceContext


class TouchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rep_id: RepId
    channel: Channel
    note: str | None = Field(default=None, max_length=5000)


class DispositionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        # _reason's rule, for the OpenAPI document: these dispositions need a reason that is not blank.
        json_schema_extra={
            "if": {
                "properties": {"disposition": {"enum": [d.value for d in sorted(REASON_REQUIRED)]}},
                "required": ["disposition"],
            },
            "then": {"properties": {"reason": {"type": "string", "pattern": r"\S"}}, "required": ["reason"]},
        },
    )
    rep_id: RepId
    disposition: Disposition
    reason: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _reason(self) -> DispositionIn:
        if self.disposition in REASON_REQUIRED and not (self.reason and self.reason.strip()):
            raise ValueError(f"a reason is required for {self.disposition.value}")
        return self


class Recorded(BaseModel):
    lead_id: str
    event_id: str


def build_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["feedback"])
    namespace = uuid.UUID(ctx.settings.lead_id_namespace)

    def event_id(scope: str, key: str | None) -> str:
        return str(uuid.uuid5(namespace, f"{scope}:{key}")) if key else str(uuid.uuid4())

    def known_rep(rep_id: str) -> None:
        if ctx.rules.rep(rep_id) is None:
            raise HTTPException(
                422, [{"loc": ["body", "rep_id"], "msg": f"unknown rep {rep_id!r}", "type": "value_error"}]
            )

    async def run(work: Any, lead_id: uuid.UUID) -> None:
        try:
            await ctx.commit_and_relay(work)
        except service.NotAssigned:
            raise HTTPException(404, f"lead {lead_id} was never assigned to sales") from None

    @router.post("/v1/leads/{lead_id}/touches", status_code=202, response_model=Recorded)
    async def log_touch(
        lead_id: uuid.UUID, body: TouchIn, idempotency_key: Annotated[str | None, Header(max_length=200)] = None
    ) -> Recorded:
        known_rep(body.rep_id)
        eid = event_id(f"touch:{lead_id}", idempotency_key)

        async def work(uow: UnitOfWork) -> None:
            await service.log_touch(ctx, uow, eid, str(lead_id), body.rep_id, body.channel, body.note)

        await run(work, lead_id)
        return Recorded(lead_id=str(lead_id), event_id=eid)

    @router.post("/v1/leads/{lead_id}/dispositions", status_code=202, response_model=Recorded)
    async def record_disposition(
        lead_id: uuid.UUID, body: DispositionIn, idempotency_key: Annotated[str | None, Header(max_length=200)] = None
    ) -> Recorded:
        known_rep(body.rep_id)
        eid = event_id(f"disposition:{lead_id}", idempotency_key)

        async def work(uow: UnitOfWork) -> None:
            await service.record_disposition(ctx, uow, eid, str(lead_id), body.rep_id, body.disposition, body.reason)

        await run(work, lead_id)
        return Recorded(lead_id=str(lead_id), event_id=eid)

    @router.get("/v1/leads/{lead_id}/feedback")
    async def lead_feedback(lead_id: uuid.UUID) -> dict[str, Any]:
        async with ctx.database.transaction() as session:
            handed = await session.get(HandedOver, str(lead_id))
            if handed is None:
                raise HTTPException(404, f"lead {lead_id} was never assigned to sales")
            touches = (
                (await session.execute(select(Touch).where(Touch.lead_id == str(lead_id)).order_by(Touch.id)))
                .scalars()
                .all()
            )
            dispositions = (
                (
                    await session.execute(
                        select(DispositionRow).where(DispositionRow.lead_id == str(lead_id)).order_by(DispositionRow.id)
                    )
                )
                .scalars()
                .all()
            )
        return {
            "lead_id": str(lead_id),
            "rep_id": handed.rep_id,
            "cycle": handed.cycle,
            "assigned_at": handed.assigned_at,
            "touches": [
                {"rep_id": t.rep_id, "channel": t.channel, "note": t.note, "touched_at": t.touched_at, "cycle": t.cycle}
                for t in touches
            ],
            "dispositions": [
                {
                    "rep_id": d.rep_id,
                    "disposition": d.disposition,
                    "reason": d.reason,
                    "recorded_at": d.recorded_at,
                    "cycle": d.cycle,
                }
                for d in dispositions
            ],
        }

    @router.get("/v1/review-board")
    async def review_board(
        since: Annotated[Since | None, Query(description="dispositions recorded at or after this time")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """Leads sales rejected or handed back, with the reason and how hard it tried (touches)."""
        query = (
            select(DispositionRow, HandedOver.touches)
            .join(HandedOver, HandedOver.lead_id == DispositionRow.lead_id)
            .where(DispositionRow.disposition.in_([d.value for d in Disposition if d is not Disposition.ACCEPTED]))
            .order_by(DispositionRow.recorded_at.desc())
            .limit(limit)
        )
        if since is not None:
            query = query.where(DispositionRow.recorded_at >= since)
        async with ctx.database.transaction() as session:
            rows = (await session.execute(query)).all()
        return [
            {
                "lead_id": d.lead_id,
                "rep_id": d.rep_id,
                "disposition": d.disposition,
                "reason": d.reason,
                "recorded_at": d.recorded_at,
                "touches": touches,
            }
            for d, touches in rows
        ]

    @router.get("/v1/metrics/funnel")
    async def metrics_funnel(
        since: Annotated[Since | None, Query(description="leads assigned at or after this time")] = None,
        territory: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        """Closed-loop metrics: handed over, touched, time to first touch, dispositions, acceptance rate."""
        async with ctx.database.unit_of_work(ctx.clock.now()) as uow:
            return await service.closed_loop(uow, since, territory)

    return router
