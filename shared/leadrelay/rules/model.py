"""The rules as a whole: every section, what must hold across them, and the look-ups the services use."""

from __future__ import annotations

from pydantic import Field, PrivateAttr, model_validator

from leadrelay.rules.forms import Form, Website, WebToLead, check_forms
from leadrelay.rules.lead_definition import LeadDefinition
from leadrelay.rules.notifications import Notifications, check_notifications
from leadrelay.rules.people import Person, Role, check_people
from leadrelay.rules.sla import Sla
from leadrelay.rules.sources import Source, check_sources
from leadrelay.rules.territories import Account, Rep, Routing, Territory
from leadrelay.rules.tracking import Tracking
from leadrelay.rules.values import StrictModel


class Rules(StrictModel):
    forms: list[Form] = Field(min_length=1)
    lead_definition: LeadDefinition
    territories: list[Territory] = Field(min_length=1)
    accounts: list[Account] = Field(default_factory=list)
    routing: Routing = Field(default_factory=Routing)
    sla: Sla
    # `people` in the file; the attribute has another name because `people()` lists everyone.
    staff: list[Person] = Field(default_factory=list, alias="people")
    notifications: Notifications = Field(default_factory=Notifications)
    sources: list[Source] = Field(default_factory=list)
    tracking: Tracking = Field(default_factory=Tracking)
    website: Website = Field(default_factory=Website)
    web_to_lead: list[WebToLead] = Field(default_factory=list)
    _people: dict[str, Person] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Rules:
        problems: list[str] = []
        for kind, ids in (
            ("form", [f.id for f in self.forms]),
            ("territory", [t.id for t in self.territories]),
            ("rep", [r.id for t in self.territories for r in t.reps]),
            ("account", [a.id for a in self.accounts]),
        ):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                problems.append(f"duplicate {kind} id(s): {', '.join(dupes)}")
        owner: dict[str, str] = {}
        for t in self.territories:
            for c in t.countries:
                if c in owner:
                    problems.append(f"country {c} is in both territories {owner[c]!r} and {t.id!r}")
                owner[c] = t.id
        fallbacks = [t.id for t in self.territories if t.fallback]
        if len(fallbacks) != 1:
            problems.append(f"exactly one territory must have fallback: true (found {len(fallbacks)})")
        reps = {r.id for t in self.territories for r in t.reps}
        for a in self.accounts:
            if a.owner not in reps:
                problems.append(f"account {a.id!r}: owner {a.owner!r} is not a rep of any territory")
        problems += check_forms(self.forms, self.web_to_lead)
        problems += check_people(self.territories, self.staff)
        problems += check_sources(self.sources)
        problems += check_notifications(
            self.notifications, {t.id for t in self.territories}, {p.id for p in self._everyone()}
        )
        if problems:
            raise ValueError("; ".join(problems))
        self._people = {p.id: p for p in reversed(self._everyone())}  # the first of an id wins
        return self

    def _everyone(self) -> list[Person]:
        reps = [
            Person(id=r.id, name=r.name, email=r.email, role=Role.REP, territories=[t.id])
            for t in self.territories
            for r in t.reps
        ]
        return reps + list(self.staff)

    # People.
    def person(self, person_id: str) -> Person | None:
        """Anyone who signs in, reps included."""
        return self._people.get(person_id)

    def people(self) -> list[Person]:
        """Everyone: the reps (territory by territory), then the `people` section, in file order."""
        return self._everyone()

    def managers_of(self, territory_id: str) -> list[Person]:
        return [p for p in self.staff if p.role is Role.MANAGER and territory_id in p.territories]

    def source(self, source_id: str) -> Source | None:
        return next((s for s in self.sources if s.id == source_id), None)

    # Look-ups used by the services.
    def form(self, form_id: str) -> Form | None:
        return next((f for f in self.forms if f.id == form_id), None)

    def rep(self, rep_id: str) -> Rep | None:
        return next((r for t in self.territories for r in t.reps if r.id == rep_id), None)

    def territory_of_rep(self, rep_id: str) -> Territory | None:
        return next((t for t in self.territories if any(r.id == rep_id for r in t.reps)), None)

    def territory_for_country(self, country: str | None) -> Territory:
        if country:
            for t in self.territories:
                if country in t.countries:
                    return t
        return self.fallback_territory

    @property
    def fallback_territory(self) -> Territory:
        return next(t for t in self.territories if t.fallback)

    def hubspot_form(self, portal_id: str, form_guid: str) -> Form | None:
        return next(
            (
                f
                for f in self.forms
                if f.hubspot and f.hubspot.portal_id == portal_id and f.hubspot.form_guid.lower() == form_guid.lower()
            ),
            None,
        )

    def web_to_lead_source(self, oid: str) -> WebToLead | None:
        return next((w for w in self.web_to_lead if w.oid == oid), None)
