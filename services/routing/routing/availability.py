"""Reps' availability at run time: ops and a rep's managers set it over HTTP, routing stores it in
its own database and applies it to the next lead it assigns, with no restart.

The rules file's ``available`` is the default; a status set here overrides it until its
``until`` passes (then the default applies again) or until it is set again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from leadrelay.auth import Principal
from leadrelay.logging import get_logger
from leadrelay.rules import Rules
from routing import repository
from routing.models import RepAvailability

log = get_logger("routing")


class Availability(StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    OUT_OF_OFFICE = "out_of_office"


@dataclass(frozen=True)
class RepState:
    available: bool  # what routing applies now
    status: str  # available | away | out_of_office
    until: datetime | None = None
    set_by: str | None = None
    set_at: datetime | None = None
    source: str = "rules"  # rules | set


def state(default: bool, row: RepAvailability | None, now: datetime) -> RepState:
    """A rep's availability now: the stored status while it holds, else the rules' default."""
    if row is not None and (row.until is None or row.until > now):
        return RepState(
            available=row.status == Availability.AVAILABLE,
            status=row.status,
            until=row.until,
            set_by=row.set_by,
            set_at=row.set_at,
            source="set",
        )
    return RepState(available=default, status=Availability.AVAILABLE if default else Availability.AWAY)


def overrides(rows: dict[str, RepAvailability], now: datetime) -> dict[str, bool]:
    """Rep id -> available, for the reps whose stored status holds now (for routing's domain)."""
    return {
        rep_id: row.status == Availability.AVAILABLE
        for rep_id, row in rows.items()
        if row.until is None or row.until > now
    }


async def set_availability(
    session: AsyncSession,
    rules: Rules,
    rep_id: str,
    status: Availability,
    until: datetime | None,
    who: Principal,
    now: datetime,
) -> RepState:
    values = {
        "rep_id": rep_id,
        "status": status.value,
        "until": until,
        "set_by": who.id,
        "set_by_role": who.role,
        "set_at": now,
    }
    await repository.store_availability(session, values)
    log.info(
        "availability_set",
        rep_id=rep_id,
        status=status.value,
        until=until.isoformat() if until else None,
        set_by=who.id,
        set_by_role=who.role,
    )
    rep = rules.rep(rep_id)
    row = RepAvailability(**values)
    return state(rep.available if rep else True, row, now)
