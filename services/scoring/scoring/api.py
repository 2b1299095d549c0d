"""Scoring's HTTP routes: a lead's score with its reasons, the hot list, and the lead definition."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from leadrelay.auth import LEAD_READERS, Principal, allow
from leadrelay.events import ConsentEvidence, LeadStatus, ScoreReason
from leadrelay.runtime import ServiceContext
from scoring import repository
from scoring.domain import is_qualified
from scoring.models import Lead
from scoring.service import reasons_of


class ScoreOut(BaseModel):
    lead_id: str
    score: int
    fit: int
    engagement: int
    threshold: int
    status: LeadStatus
    qualified: bool
    qualification: str | None
    cycle: int
    reasons: list[ScoreReason]
    updated_at: datetime


def _out(lead: Lead, threshold: int) -> ScoreOut:
    status = LeadStatus(lead.status)
    return ScoreOut(
        lead_id=lead.lead_id,
        score=lead.score,
        fit=lead.fit,
        engagement=lead.engagement,
        threshold=threshold,
        status=status,
        qualified=is_qualified(status),
        qualification=lead.qualification,
        cycle=lead.cycle,
        reasons=reasons_of(lead),
        updated_at=lead.updated_at,
    )


def build_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["scoring"])
    threshold = ctx.rules.lead_definition.threshold

    @router.get("/v1/leads/{lead_id}/score", response_model=ScoreOut)
    async def get_score(lead_id: uuid.UUID, who: Annotated[Principal, Depends(allow(*LEAD_READERS))]) -> ScoreOut:
        """A lead's score and why: for its rep, their managers, ops, admins and the CRM."""
        async with ctx.database.read() as session:
            lead = await repository.lead(session, str(lead_id))
        who.check_lead(lead_id, lead.rep_id if lead else None, lead.territory if lead else None)
        if lead is None:
            raise HTTPException(404, f"no lead {lead_id} (not yet scored, or never submitted)")
        return _out(lead, threshold)

    @router.get("/v1/leads/{lead_id}/consent", response_model=list[ConsentEvidence])
    async def get_consent(
        lead_id: uuid.UUID, who: Annotated[Principal, Depends(allow(*LEAD_READERS))]
    ) -> list[ConsentEvidence]:
        """The consent the lead gave (text, time, source, form, page), oldest first: evidence for
        whoever may contact the lead: its rep, their managers, ops, admins and the CRM."""
        async with ctx.database.read() as session:
            lead = await repository.lead(session, str(lead_id))
        who.check_lead(lead_id, lead.rep_id if lead else None, lead.territory if lead else None)
        if lead is None:
            raise HTTPException(404, f"no lead {lead_id} (not yet scored, or never submitted)")
        return [ConsentEvidence.model_validate(c) for c in lead.consent or []]

    @router.get("/v1/leads", response_model=list[ScoreOut])
    async def hot_list(
        who: Annotated[Principal, Depends(allow(*LEAD_READERS))],
        status: Annotated[LeadStatus | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[ScoreOut]:
        """Leads by score, highest first: the list reps plan their day with. A rep sees their own
        leads, a manager their territories' (leads not handed to sales: ops, admins, the CRM)."""
        async with ctx.database.read() as session:
            leads = await repository.hot_list(session, who, status, limit)
        return [_out(lead, threshold) for lead in leads]

    @router.get("/v1/lead-definition", dependencies=[Depends(allow(*LEAD_READERS))])
    async def lead_definition() -> dict[str, Any]:
        """The shared definition of a qualified lead, as everyone should see it."""
        return {
            "lead_definition": ctx.rules.lead_definition.model_dump(mode="json", by_alias=True, exclude_none=True),
            "handraiser_forms": [f.id for f in ctx.rules.forms if f.handraiser],
        }

    return router
