"""Routing's HTTP routes: a lead's assignment, the suppression list, territories with their loads,
and reps' availability."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from leadrelay.auth import AVAILABILITY_SETTERS, LEAD_READERS, PEOPLE, SUPPRESSION_READERS, Principal, allow
from leadrelay.contract import AwareDateTime
from leadrelay.events import Handoff
from leadrelay.rules import Role, Rules
from leadrelay.runtime import ServiceContext
from routing import availability, repository
from routing.availability import Availability, RepState


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


class AvailabilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Availability
    until: AwareDateTime | None = Field(default=None, description="then the rules' default applies again")


class AvailabilityState(BaseModel):
    available: bool = Field(description="whether routing gives the rep new leads now")
    status: str = Field(description="available, away or out_of_office")
    until: datetime | None = Field(description="when the rules' default applies again; null: until set again")
    set_by: str | None = Field(description="the person id of who set it; null: the rules' default")
    set_by_name: str | None = Field(
        description="that person's name as the rules write it; null when nobody set it or they left the rules"
    )
    set_at: datetime | None


class AvailabilityOut(AvailabilityState):
    rep_id: str


class TerritoryRep(AvailabilityState):
    id: str
    name: str = Field(description="as the rules write it")
    capacity: int = Field(description="open assignments before routing skips the rep")
    open_leads: int


class TerritoryOut(BaseModel):
    id: str
    name: str = Field(description="as the rules write it")
    countries: list[str] = Field(description="ISO 3166 alpha-2 codes")
    fallback: bool = Field(description="takes every lead no other territory covers")
    managers: list[str] = Field(description="the person ids of the territory's managers")
    manager_names: list[str] = Field(description="their names as the rules write them, in the same order")
    reps: list[TerritoryRep] = Field(description="a rep sees only their own entry")


def _state(st: RepState, rules: Rules) -> AvailabilityState:
    setter = rules.person(st.set_by) if st.set_by else None
    return AvailabilityState(
        available=st.available,
        status=st.status,
        until=st.until,
        set_by=st.set_by,
        set_by_name=setter.name if setter else None,
        set_at=st.set_at,
    )


def build_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["routing"])

    @router.get("/v1/leads/{lead_id}/assignment", response_model=AssignmentOut)
    async def get_assignment(
        lead_id: uuid.UUID, who: Annotated[Principal, Depends(allow(*LEAD_READERS))]
    ) -> AssignmentOut:
        """The lead's latest assignment (``status`` tells whether sales still has it)."""
        async with ctx.database.read() as session:
            row = await repository.latest_assignment(session, str(lead_id))
        who.check_lead(lead_id, row.rep_id if row else None, row.territory if row else None)
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
    async def suppressions(
        who: Annotated[Principal, Depends(allow(*SUPPRESSION_READERS))],
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    ) -> list[dict[str, Any]]:
        """Leads sales is working: marketing must not contact them until they are recycled.
        A rep sees their own, a manager their territories', ops, admins and the CRM all."""
        async with ctx.database.read() as session:
            rows = await repository.suppressions(session, who, limit)
        return [{"lead_id": lid, "rep_id": rep, "since": at} for lid, rep, at in rows]

    @router.get("/v1/territories", response_model=list[TerritoryOut])
    async def territories(who: Annotated[Principal, Depends(allow(*PEOPLE))]) -> list[TerritoryOut]:
        """Territories with their managers, and their reps' availability and open leads, people by
        id and by name: a rep sees their own entry, a manager their territories, ops and admins all."""
        async with ctx.database.read() as session:
            loads = await repository.open_loads(session)
            stored = await repository.availability_rows(session)
        now = ctx.clock.now()
        out = []
        for t in ctx.rules.territories:
            if not who.sees_everything and t.id not in who.territories:
                continue
            reps = [r for r in t.reps if who.role != Role.REP or r.id == who.id]
            managers = ctx.rules.managers_of(t.id)
            out.append(
                TerritoryOut(
                    id=t.id,
                    name=t.name,
                    countries=list(t.countries),
                    fallback=t.fallback,
                    managers=[m.id for m in managers],
                    manager_names=[m.name for m in managers],
                    reps=[
                        TerritoryRep(
                            id=r.id,
                            name=r.name,
                            capacity=r.capacity,
                            open_leads=loads.get(r.id, 0),
                            **_state(availability.state(r.available, stored.get(r.id), now), ctx.rules).model_dump(),
                        )
                        for r in reps
                    ],
                )
            )
        return out

    @router.put("/v1/reps/{rep_id}/availability", response_model=AvailabilityOut)
    async def set_availability(
        rep_id: str, body: AvailabilityIn, who: Annotated[Principal, Depends(allow(*AVAILABILITY_SETTERS))]
    ) -> AvailabilityOut:
        """Set a rep available, away or out of office (until a time, or until set again): routing
        applies it to the next lead at once. Ops, admins, and the managers of the rep's territory."""
        territory = ctx.rules.territory_of_rep(rep_id)
        if territory is None:
            raise HTTPException(404, f"no rep {rep_id!r} in the rules")
        if not who.sees_everything and territory.id not in who.territories:
            raise HTTPException(403, f"rep {rep_id} is not in a territory you manage")
        now = ctx.clock.now()
        if body.until is not None and body.until <= now:
            raise HTTPException(
                422, [{"loc": ["body", "until"], "msg": "must be in the future", "type": "value_error"}]
            )
        async with ctx.unit_of_work() as uow:
            st = await availability.set_availability(uow.session, ctx.rules, rep_id, body.status, body.until, who, now)
        return AvailabilityOut(rep_id=rep_id, **_state(st, ctx.rules).model_dump())

    return router
