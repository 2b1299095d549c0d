"""The reps' queue's route: the caller's open leads, most urgent first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query

from leadrelay.auth import PEOPLE, Principal, allow
from leadrelay.contract import TerritoryId
from sla_monitor.queue import repository
from sla_monitor.queue.domain import DeadlineStatus, Stage, item

if TYPE_CHECKING:
    from sla_monitor.resources import SlaContext


def build_router(ctx: SlaContext) -> APIRouter:
    router = APIRouter(tags=["sla"])

    @router.get("/v1/me/leads")
    async def my_leads(
        who: Annotated[Principal, Depends(allow(*PEOPLE))],
        status: Annotated[Stage | None, Query(description="new, touched or accepted")] = None,
        territory: Annotated[TerritoryId | None, Query(description="only this territory's leads")] = None,
        sla: Annotated[DeadlineStatus | None, Query(description="the next deadline: running or breached")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """The caller's open leads (a manager's: their territories'; ops and admins: all), each with
        the handoff summary and the next SLA deadline, most urgent first."""
        who.check_territory(territory, ctx.rules)
        now = ctx.clock.now()
        async with ctx.database.read() as session:
            rows = await repository.open_queue(session, who, now, status, territory, sla, limit)
        return [item(row, now) for row in rows]

    return router
