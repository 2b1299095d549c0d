"""Feedback's HTTP routes: what reps (or the CRM) report, the lead review board, closed-loop metrics."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from feedback import service
from feedback.domain import REASON_REQUIRED
from leadrelay.events import Channel, Disposition
from leadrelay.runtime import ServiceContext
from leadrelay.unit_of_work import UnitOfWork


class TouchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rep_id: str = Field(min_length=1, max_length=100)
    channel: Channel
    note: str | None = Field(default=None, max_length=5000)


class DispositionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rep_id: str = Field(min_length=1, max_length=100)
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
        try:
            return await service.lead_feedback(ctx, str(lead_id))
        except service.NotAssigned:
            raise HTTPException(404, f"lead {lead_id} was never assigned to sales") from None

    @router.get("/v1/review-board")
    async def review_board(
        since: Annotated[datetime | None, Query()] = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:
        """Leads sales rejected or handed back, with the reason and how hard it tried (touches)."""
        return await service.review_board(ctx, since, limit)

    @router.get("/v1/metrics/funnel")
    async def metrics_funnel(
        since: Annotated[datetime | None, Query(description="leads assigned at or after this time")] = None,
        territory: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        """Closed-loop metrics: handed over, touched, time to first touch, dispositions, acceptance rate."""
        if since is not None and since.tzinfo is None:
            raise HTTPException(422, "since needs a timezone, e.g. 2026-05-01T00:00:00Z")
        return await service.closed_loop(ctx, since, territory)

    return router
