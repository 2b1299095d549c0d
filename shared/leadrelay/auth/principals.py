"""The caller (:class:`Principal`) and what they may see and do: ownership of a lead, a list's
territory filter, acting in a rep's name, and lists restricted in SQL (:func:`scoped`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVarTuple

from fastapi import HTTPException
from sqlalchemy import ColumnElement, Select, false
from sqlalchemy.orm import InstrumentedAttribute

from leadrelay.events import Actor
from leadrelay.rules import Role, Rules, SourceRole


@dataclass(frozen=True)
class Principal:
    """The caller: a person (signed in with a token) or a machine source (with its API key)."""

    kind: Literal["person", "source"]
    id: str
    role: str
    name: str
    territories: frozenset[str] = frozenset()
    email: str | None = None
    expires_at: datetime | None = None

    @property
    def actor(self) -> Actor:
        return Actor(kind=self.kind, id=self.id, role=self.role)

    @property
    def is_person(self) -> bool:
        return self.kind == "person"

    @property
    def sees_everything(self) -> bool:
        """Ops and admins see every lead; so does the CRM (it mirrors them all)."""
        if self.kind == "person":
            return self.role in (Role.OPS, Role.ADMIN)
        return self.role == SourceRole.CRM

    def may_see(self, rep_id: str | None, territory: str | None) -> bool:
        """Whether a lead owned by ``rep_id`` in ``territory`` is visible (None: no owner known)."""
        if self.sees_everything:
            return True
        if self.kind == "person" and self.role == Role.REP:
            return rep_id is not None and rep_id == self.id
        if self.kind == "person" and self.role == Role.MANAGER:
            return territory is not None and territory in self.territories
        return False

    def check_lead(self, lead_id: object, rep_id: str | None, territory: str | None) -> None:
        """403 unless the caller may see the lead. A lead the service does not know is a 403 too for
        those who see only their own (no existence oracle), and a 404 later for those who see all."""
        if not self.may_see(rep_id, territory):
            raise HTTPException(403, f"lead {lead_id} is not one of yours")

    def check_territory(self, territory: str | None, rules: Rules) -> None:
        """A list's ``territory`` filter: 403 when a rep or manager names one that is not theirs
        (naming theirs; no telling whether another exists), 422 when those who see everything name
        one the rules do not have (naming those they have), rather than an empty list for a typo."""
        if territory is None:
            return
        if not self.sees_everything:
            if territory not in self.territories:
                mine = ", ".join(sorted(self.territories)) or "none"
                raise HTTPException(403, f"territory {territory!r} is not yours (yours: {mine})")
            return
        known = [t.id for t in rules.territories]
        if territory not in known:
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["query", "territory"],
                        "msg": f"unknown territory {territory!r} (known: {', '.join(known)})",
                        "type": "value_error",
                    }
                ],
            )

    def may_act_for(self, rep_id: str, rules: Rules) -> bool:
        """Whether the caller may log a touch or a disposition in ``rep_id``'s name."""
        if self.kind == "person" and self.role == Role.REP:
            return rep_id == self.id
        if self.kind == "person" and self.role == Role.MANAGER:
            home = rules.territory_of_rep(rep_id)
            return home is not None and home.id in self.territories
        return self.sees_everything


Ts = TypeVarTuple("Ts")
Column = ColumnElement[Any] | InstrumentedAttribute[Any]


def scoped(query: Select[*Ts], who: Principal, rep: Column, territory: Column) -> Select[*Ts]:
    """``query`` restricted to the leads the caller may see: a rep their own, a manager their
    territories', ops, admins and the CRM everything."""
    if who.sees_everything:
        return query
    if who.kind == "person" and who.role == Role.REP:
        return query.where(rep == who.id)
    if who.kind == "person" and who.role == Role.MANAGER:
        return query.where(territory.in_(sorted(who.territories)))
    return query.where(false())
