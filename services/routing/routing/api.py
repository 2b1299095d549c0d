"""Routing's HTTP routes: a lead's assignment, the suppression list, territories with their loads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from leadrelay.events import Handoff
from leadrelay.runtime import ServiceContext
from routing import repository


class AssignmentOut(BaseModel):
    lead_id: str
    rep_id: str
    territory: str
    assigned_at: datetime
    cycle: int
    status: str
    matched_by: str
    released_at: datetime | None
    release_reason: str | None
    handoff: Handoff


def build_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["routing"])

    @router.get("/v1/leads/{lead_id}/assignment", response_model=AssignmentOut)
    async def get_assignment(lead_id: uuid.UUID) -> AssignmentOut:
        """The lead's latest assignment (``status`` tells whether sales still has it)."""
        async with ctx.database.transaction() as session:
            row = await repository.latest_assignment(session, str(lead_id))
        if row is None:
            raise HTTPException(404, f"lead {lead_id} is not assigned")
        return AssignmentOut(
            lead_id=row.lead_id,
            rep_id=row.rep_id,
            territory=row.territory,
            assigned_at=row.assigned_at,
            cycle=row.cycle,
            status=row.status,
            matched_by=row.matched_by,
            released_at=row.released_at,
            release_reason=row.release_reason,
            handoff=Handoff.model_validate(row.handoff),
        )

    @router.get("/v1/suppressions")
    async def suppressions(limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> list[dict[str, Any]]:
        """Leads sales is working: marketing must not contact them until they are recycled."""
        async with ctx.database.transaction() as session:
            rows = await repository.suppressions(session, limit)
        return [{"lead_id": lid, "rep_id": rep, "since": at} for lid, rep, at in rows]

    @router.get("/v1/territories")
    async def territories() -> list[dict[str, Any]]:
        async with ctx.database.transaction() as session:
            loads = await repository.open_loads(session)
        return [
            {
                "id": t.id,
                "name": t.name,
                "countries": t.countries,
                "fallback": t.fallback,
                "reps": [
                    {
                        "id": r.id,
                        "name": r.name,
                        "available": r.available,
                        "capacity": r.capacity,
                        "open_leads": loads.get(r.id, 0),
                    }
                    for r in t.reps
                ],
            }
            for t in ctx.rules.territories
        ]

    return router
