"""Who is who: the roles and the people who sign in (the rules' ``people`` section)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from leadrelay.rules.territories import Territory
from leadrelay.rules.values import NAME_MAX

# ---------------------------------------------------------------- people and roles
# Who is who: reps live in their territory (role rep); managers, ops and admins in
# the top-level `people` section. Ids are unique across both.


class Role(StrEnum):
    REP = "rep"  # sees and acts on their own leads
    MANAGER = "manager"  # sees and acts on their territories' leads and reps
    OPS = "ops"  # sees everything, acts on SLA alerts and availability
    ADMIN = "admin"  # everything; owns the rules, sources and people


class Person(BaseModel):
    """A person who signs in. A rep's territories are the one territory it belongs to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)
    name: str = Field(min_length=1, max_length=NAME_MAX)
    email: str | None = None
    role: Role
    territories: list[str] = Field(default_factory=list)


def check_people(territories: list[Territory], staff: list[Person]) -> list[str]:
    """What is wrong with the ``people`` section, given the territories and their reps (one line each)."""
    problems: list[str] = []
    territory_ids = {t.id for t in territories}
    rep_home = {r.id: t.id for t in territories for r in t.reps}
    seen: dict[str, int] = {}
    for i, person in enumerate(staff):
        where = f"people.{i}"
        if person.id in rep_home:
            problems.append(f"{where}.id: {person.id!r} is already a rep of territory {rep_home[person.id]!r}")
        elif person.id in seen:
            problems.append(f"{where}.id: duplicate person id {person.id!r} (also people.{seen[person.id]})")
        seen.setdefault(person.id, i)
        if person.role is Role.REP:
            problems.append(f"{where}.role: reps are listed under their territory's reps, not in people")
        elif person.role is Role.MANAGER:
            if not person.territories:
                problems.append(f"{where}.territories: a manager needs at least one territory")
            for t in person.territories:
                if t not in territory_ids:
                    problems.append(f"{where}.territories: unknown territory {t!r}")
        elif person.territories:
            problems.append(f"{where}.territories: only managers have territories ({person.role.value} sees all)")
    return problems
