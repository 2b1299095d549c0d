"""Feedback's HTTP routes: what reps (or the CRM) report, the lead review board, closed-loop metrics."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from feedback import repository, service
from feedback.domain import REASON_REQUIRED
from leadrelay.auth import FEEDBACK_WRITERS, LEAD_READERS, PEOPLE, Principal, allow
from leadrelay.contract import RepId, Since, TerritoryId
from leadrelay.events import Channel, Disposition
from leadrelay.inputs import MultilineText
from leadrelay.rules import Role
from leadrelay.runtime import ServiceContext
from leadrelay.unit_of_work import UnitOfWork

REP_ID = (
    "the rep it is credited to: default the caller (a rep) or the lead's rep; only a manager (their territories),"
    " ops, an admin or the CRM may name another"
)


class TouchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rep_id: RepId | None = Field(default=None, description=REP_ID)
    channel: Channel
    note: MultilineText | None = Field(default=None, max_length=5000)


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
    rep_id: RepId | None = Field(default=None, description=REP_ID)
    disposition: Disposition
    reason: MultilineText | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _reason(self) -> DispositionIn:
        if self.disposition in REASON_REQUIRED and not (self.reason and self.reason.strip()):
            raise ValueError(f"a reason is required for {self.disposition.value}")
        return self


class LoggedBy(BaseModel):
    kind: str | None = Field(description="person or source")
    id: str = Field(description="the person's id, or the source's id")
    role: str | None
    name: str | None = Field(description="as the rules write it; null when no longer in the rules")


class TouchOut(BaseModel):
    rep_id: str = Field(description="the rep it is credited to")
    channel: str
    note: str | None
    touched_at: datetime
    cycle: int
    logged_by: LoggedBy | None = Field(description="who logged it; null when its event named nobody")


class DispositionOut(BaseModel):
    rep_id: str = Field(description="the rep it is credited to")
    disposition: str
    reason: str | None
    recorded_at: datetime
    cycle: int
    logged_by: LoggedBy | None = Field(description="who logged it; null when its event named nobody")


class LeadFeedback(BaseModel):
    lead_id: str
    rep_id: str = Field(description="the rep of the latest assignment")
    cycle: int
    assigned_at: datetime
    touches: list[TouchOut]
    dispositions: list[DispositionOut]


class Recorded(BaseModel):
    lead_id: str
    event_id: str


def build_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["feedback"])
    namespace = uuid.UUID(ctx.settings.lead_id_namespace)

    def event_id(scope: str, key: str | None) -> str:
        return str(uuid.uuid5(namespace, f"{scope}:{key}")) if key else str(uuid.uuid4())

    def known_rep(rep_id: str | None) -> None:
        if rep_id is not None and ctx.rules.rep(rep_id) is None:
            raise HTTPException(
                422, [{"loc": ["body", "rep_id"], "msg": f"unknown rep {rep_id!r}", "type": "value_error"}]
            )

    async def acting_rep(who: Principal, lead_id: uuid.UUID, named: str | None) -> str:
        """The rep a touch or disposition is credited to; 403 unless the caller may act for them."""
        known_rep(named)
        async with ctx.database.read() as session:
            handed = await repository.handed_over(session, str(lead_id))
        who.check_lead(lead_id, handed.rep_id if handed else None, handed.territory if handed else None)
        if handed is None:
            raise HTTPException(404, f"lead {lead_id} was never assigned to sales")
        rep_id = named or (who.id if who.is_person and who.role == Role.REP else handed.rep_id)
        if not who.may_act_for(rep_id, ctx.rules):
            raise HTTPException(403, f"you may not act for rep {rep_id}")
        return rep_id

    @contextlib.asynccontextmanager
    async def writing(lead_id: uuid.UUID) -> AsyncIterator[UnitOfWork]:
        """A unit of work for a write about ``lead_id``; 404 if the lead was never handed over."""
        try:
            async with ctx.unit_of_work() as uow:
                yield uow
        except service.NotAssigned:
            raise HTTPException(404, f"lead {lead_id} was never assigned to sales") from None

    @router.post("/v1/leads/{lead_id}/touches", status_code=202, response_model=Recorded)
    async def log_touch(
        lead_id: uuid.UUID,
        body: TouchIn,
        who: Annotated[Principal, Depends(allow(*FEEDBACK_WRITERS))],
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Recorded:
        """A touch (call, email, meeting, social) on a lead, by its rep or for its rep."""
        rep_id = await acting_rep(who, lead_id, body.rep_id)
        eid = event_id(f"touch:{lead_id}:{who.kind}:{who.id}", idempotency_key)

        async with writing(lead_id) as uow:
            await service.log_touch(ctx, uow, eid, str(lead_id), rep_id, body.channel, body.note, who.actor)
        return Recorded(lead_id=str(lead_id), event_id=eid)

    @router.post("/v1/leads/{lead_id}/dispositions", status_code=202, response_model=Recorded)
    async def record_disposition(
        lead_id: uuid.UUID,
        body: DispositionIn,
        who: Annotated[Principal, Depends(allow(*FEEDBACK_WRITERS))],
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Recorded:
        """Sales' verdict on a lead, by its rep or for its rep."""
        rep_id = await acting_rep(who, lead_id, body.rep_id)
        eid = event_id(f"disposition:{lead_id}:{who.kind}:{who.id}", idempotency_key)

        async with writing(lead_id) as uow:
            await service.record_disposition(
                ctx, uow, eid, str(lead_id), rep_id, body.disposition, body.reason, who.actor
            )
        return Recorded(lead_id=str(lead_id), event_id=eid)

    @router.get("/v1/leads/{lead_id}/feedback", response_model=LeadFeedback)
    async def lead_feedback(
        lead_id: uuid.UUID, who: Annotated[Principal, Depends(allow(*LEAD_READERS))]
    ) -> dict[str, Any]:
        try:
            return await service.lead_feedback(ctx, who, str(lead_id))
        except service.NotAssigned:
            raise HTTPException(404, f"lead {lead_id} was never assigned to sales") from None

    @router.get("/v1/review-board")
    async def review_board(
        who: Annotated[Principal, Depends(allow(*PEOPLE))],
        since: Annotated[Since | None, Query(description="dispositions recorded at or after this time")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """Leads sales rejected or handed back, with the reason and how hard it tried (touches).
        A rep sees their own, a manager their territories'."""
        return await service.review_board(ctx, who, since, limit)

    @router.get("/v1/metrics/funnel")
    async def metrics_funnel(
        who: Annotated[Principal, Depends(allow(*PEOPLE))],
        since: Annotated[Since | None, Query(description="leads assigned at or after this time")] = None,
        territory: Annotated[TerritoryId | None, Query(description="only this territory's leads")] = None,
    ) -> dict[str, Any]:
        """Closed-loop metrics: handed over, touched, time to first touch, dispositions, acceptance
        rate; over a rep's own leads, a manager's territories', or all for ops and admins."""
        who.check_territory(territory, ctx.rules)
        return await service.closed_loop(ctx, who, since, territory)

    return router
