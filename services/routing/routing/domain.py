"""Who gets a qualified lead. Pure: the caller passes the reps' open loads and the cursor.

Order of precedence:
1. a named account (by email or website domain, or a fuzzy match of the company
   name) goes to the account's owner, so regional offices never unknowingly work
   a company headquarters is already talking to;
2. otherwise the territory of the lead's country (the fallback territory when no
   territory covers it), round robin over its reps that are available and under
   capacity;
3. a territory with every rep away goes to the fallback territory; if every rep
   there is at capacity too, the least loaded available rep takes it (overflow).
   A lead is never left unassigned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from rapidfuzz import fuzz, process, utils

from leadrelay.events import Contact
from leadrelay.rules import Account, Rep, Rules, Territory

_LEGAL = re.compile(
    r"\b(ab|aps|as|asa|oy|oyj|ag|gmbh|kg|kgaa|se|bv|nv|sa|sarl|srl|spa|ltd|limited|plc|llc|inc|corp|corporation|co|company"
    r"|group|holding|holdings)\b",
    re.IGNORECASE,
)
# Dots, slashes and hyphens inside words ("B.V.", "A/S", "Co-op") join them before matching.
_JOINERS = re.compile(r"(?<=\w)[./-](?=\w)|(?<=\w)\.(?=\s|$)")


def company_key(name: str) -> str:
    """A company name without legal form and punctuation: 'Volvo Cars AB' -> 'volvo cars', 'Philips B.V.' -> 'philips'."""
    joined = _JOINERS.sub("", name)
    return " ".join(_LEGAL.sub(" ", utils.default_process(joined)).split())


@dataclass(frozen=True)
class Choice:
    rep: Rep
    territory: Territory
    matched_by: str  # account | territory | fallback | overflow
    account: Account | None = None
    cursor: int | None = None  # new round-robin position for `territory`, if round robin was used


def match_account(rules: Rules, contact: Contact) -> Account | None:
    domains = {contact.email_domain}
    if contact.website:
        domains.add(contact.website.lower())
    for account in rules.accounts:
        if any(d.lower() in domains or any(x.endswith("." + d.lower()) for x in domains) for d in account.domains):
            return account
    if contact.company:
        key = company_key(contact.company)
        if not key:
            return None
        choices = {(a.id, n): company_key(n) for a in rules.accounts for n in (a.name, *a.aliases)}
        best = process.extractOne(
            key, choices, scorer=fuzz.token_sort_ratio, score_cutoff=rules.routing.account_match_score
        )
        if best is not None:
            account_id = best[2][0]
            return next(a for a in rules.accounts if a.id == account_id)
    return None


def _round_robin(
    territory: Territory, loads: dict[str, int], cursor: int, available: Mapping[str, bool]
) -> tuple[Rep, int] | None:
    reps = territory.reps
    for step in range(len(reps)):
        i = (cursor + step) % len(reps)
        rep = reps[i]
        if available.get(rep.id, rep.available) and loads.get(rep.id, 0) < rep.capacity:
            return rep, (i + 1) % len(reps)
    return None


def choose(
    rules: Rules,
    contact: Contact,
    loads: dict[str, int],
    cursors: dict[str, int],
    available: Mapping[str, bool] | None = None,
) -> Choice:
    """``available`` overrides the rules' ``available`` per rep id (availability set at run time)."""
    available = available or {}

    def is_available(rep: Rep) -> bool:
        return available.get(rep.id, rep.available)

    account = match_account(rules, contact)
    if account is not None:
        owner = rules.rep(account.owner)
        territory = rules.territory_of_rep(account.owner)
        if owner is not None and territory is not None and is_available(owner):
            return Choice(rep=owner, territory=territory, matched_by="account", account=account)
    home = rules.territory_for_country(contact.country)
    for territory, how in (
        (home, "territory" if not home.fallback else "fallback"),
        (rules.fallback_territory, "fallback"),
    ):
        picked = _round_robin(territory, loads, cursors.get(territory.id, 0), available)
        if picked is not None:
            rep, cursor = picked
            return Choice(rep=rep, territory=territory, matched_by=how, account=account, cursor=cursor)
    # Everyone is at capacity: overflow to the least loaded available rep, at home first, then
    # anywhere; only if every rep everywhere is away does an unavailable rep get it.
    everyone = [r for t in rules.territories for r in t.reps]
    for pool in ([r for r in home.reps if is_available(r)], [r for r in everyone if is_available(r)], everyone):
        if pool:
            rep = min(pool, key=lambda r: (loads.get(r.id, 0) / r.capacity, r.id))
            territory = rules.territory_of_rep(rep.id) or home
            return Choice(rep=rep, territory=territory, matched_by="overflow", account=account)
    raise RuntimeError("no reps configured")  # unreachable: the rules require reps in every territory


# An assignment's status: sales has the lead, or it ended (handed back, closed or requalified).
ACTIVE = "active"
RELEASED = "released"
REQUALIFIED = "requalified"


@dataclass(frozen=True)
class QualificationPlan:
    assign: bool
    # Active assignments (by cycle) that end with this qualification.
    release: tuple[int, ...] = ()


def plan_qualification(assignments: list[tuple[int, str]], cycle: int) -> QualificationPlan:
    """What a qualification of ``cycle`` does, given the lead's (cycle, status) assignments.

    An active assignment of this cycle or a newer one means it is a repeat: nothing happens.
    A newer qualification means the previous cycle ended, even if its recycle has not arrived
    yet (it travels on another topic): the older active assignment is released. A cycle that
    was assigned once is never assigned again.
    """
    active = [c for c, status in assignments if status == ACTIVE]
    if any(c >= cycle for c in active):
        return QualificationPlan(assign=False)
    return QualificationPlan(assign=all(c != cycle for c, _ in assignments), release=tuple(active))
