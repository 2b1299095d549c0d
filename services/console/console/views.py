"""What the pages show, from what the services answered: pure functions, no I/O.

The lead page merges two sources on purpose: feedback records a touch or a disposition before
answering 202, while the SLA monitor learns of it from the event a moment later. The clocks are
shown stopped as soon as feedback has the touch, so the countdown stops at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from console.services import IN_PROCESS
from leadrelay.events import Channel, Disposition, SlaClockName

FIRST_TOUCH, DISPOSITION = SlaClockName.FIRST_TOUCH.value, SlaClockName.DISPOSITION.value
REASON_REQUIRED = tuple(d.value for d in Disposition if d.needs_reason)
DISPOSITIONS = tuple(d.value for d in Disposition)
CHANNELS = tuple(c.value for c in Channel)
AVAILABILITY = ("available", "away", "out_of_office")
DURATIONS = {"open": None, "4h": timedelta(hours=4), "1d": timedelta(days=1), "1w": timedelta(weeks=1)}
PERIODS = {"7": 7, "30": 30, "90": 90, "all": None}


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else ""


def _cjk(text: str) -> bool:
    return any("\u3040" <= ch <= "\u30ff" or "\u3400" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in text)


def person_name(contact: Mapping[str, Any] | None) -> str:
    """A contact's name as they wrote it (any script), else their address. Chinese, Japanese and
    Korean names read family name first, with no space: 李娜, not 娜 李."""
    contact = contact or {}
    first, last = (str(contact.get(k) or "").strip() for k in ("first_name", "last_name"))
    if first and last and _cjk(first) and _cjk(last):
        return last + first
    name = " ".join(p for p in (first, last) if p)
    return name or str(contact.get("email") or "")


def queue_item(item: Mapping[str, Any]) -> dict[str, Any]:
    handoff = item.get("handoff") or {}
    contact = handoff.get("contact") or {}
    deadline = item.get("next_deadline")
    return {
        "lead_id": item["lead_id"],
        "name": person_name(contact) or item["lead_id"][:8],
        "company": contact.get("company"),
        "job_title": contact.get("job_title"),
        "country": contact.get("country"),
        "qualification": item.get("qualification"),
        "score": handoff.get("score"),
        "status": item.get("status"),
        "touches": item.get("touches") or 0,
        "rep_id": item.get("rep_id"),
        "territory": item.get("territory"),
        "assigned_at": item.get("assigned_at"),
        "deadline": (
            {"name": deadline["name"], "due_at": deadline["due_at"], "overdue": deadline.get("status") == "breached"}
            if deadline
            else None
        ),
    }


def queue_signature(items: Iterable[Mapping[str, Any]]) -> str:
    """What changes the queue's rendering (not the seconds left, which the browser counts down)."""
    parts = []
    for i in items:
        d = i.get("next_deadline") or {}
        parts.append(
            f"{i['lead_id']}|{i.get('cycle')}|{i.get('status')}|{i.get('touches')}|{d.get('name')}|{d.get('status')}"
        )
    return "\n".join(parts)


def clocks_now(
    sla: Mapping[str, Any] | None, feedback: Mapping[str, Any] | None, cycle: int | None
) -> list[dict[str, Any]]:
    """The current cycle's clocks, stopped as soon as feedback has what stops them."""
    if not sla:
        return []
    clocks = [c for c in sla.get("clocks", []) if cycle is None or c.get("cycle") == cycle]
    touched = disposed = False
    if feedback:
        touched = any(t.get("cycle") == cycle for t in feedback.get("touches", []))
        disposed = any(d.get("cycle") == cycle for d in feedback.get("dispositions", []))
    out = []
    for c in clocks:
        status = c.get("status")
        stops = disposed or (touched and c.get("name") == FIRST_TOUCH)
        if status == "running" and stops:
            status = "met"
        out.append({"name": c.get("name"), "due_at": c.get("due_at"), "status": status})
    order = {FIRST_TOUCH: 0, DISPOSITION: 1}
    return sorted(out, key=lambda c: order.get(str(c["name"]), 9))


CLOSING = tuple(d.value for d in Disposition if d.closes_assignment)


def closed_by(feedback: Mapping[str, Any] | None, cycle: int | None) -> str | None:
    """The status that took the lead away from sales in this cycle (recycle, junk, unreachable),
    as soon as feedback has it: the work panel stops offering actions at once."""
    latest = None
    for d in (feedback or {}).get("dispositions", []):
        if d.get("cycle") == cycle:
            latest = d.get("disposition")
    return latest if latest in CLOSING else None


def timeline(
    activities: Iterable[Mapping[str, Any]],
    feedback: Mapping[str, Any] | None,
    rep_names: Mapping[str, str],
    form_names: Mapping[str, str],
) -> list[dict[str, Any]]:
    """Everything that happened to the lead, newest first: its activities, touches and statuses."""
    out: list[dict[str, Any]] = []
    for a in activities:
        detail = a.get("detail")
        if a.get("type") == "form_submitted" and detail:
            detail = form_names.get(str(detail), detail)
        out.append(
            {
                "kind": "activity",
                "type": a.get("type"),
                "at": a.get("occurred_at"),
                "detail": detail or a.get("url"),
                "logged_by": None,
            }
        )
    for t in (feedback or {}).get("touches", []):
        out.append(
            {
                "kind": "touch",
                "channel": t.get("channel"),
                "at": t.get("touched_at"),
                "rep": rep_names.get(t.get("rep_id"), t.get("rep_id")),
                "detail": t.get("note"),
                "logged_by": _logged_by(t, rep_names),
            }
        )
    for d in (feedback or {}).get("dispositions", []):
        out.append(
            {
                "kind": "disposition",
                "disposition": d.get("disposition"),
                "at": d.get("recorded_at"),
                "rep": rep_names.get(d.get("rep_id"), d.get("rep_id")),
                "detail": d.get("reason"),
                "logged_by": _logged_by(d, rep_names),
            }
        )
    return sorted(out, key=lambda e: parse_time(e["at"]) or datetime.min.replace(tzinfo=UTC), reverse=True)


def _logged_by(row: Mapping[str, Any], rep_names: Mapping[str, str]) -> str | None:
    """Who logged it (by name), when that is someone else than the rep it is credited to."""
    by = row.get("logged_by")
    if not isinstance(by, dict) or by.get("id") in (None, row.get("rep_id")):
        return None
    return str(by.get("name") or rep_names.get(by["id"], by["id"]))


def handraiser_form(activities: Iterable[Mapping[str, Any]], handraiser_forms: Iterable[str]) -> str | None:
    """The handraiser form the lead filled in, if any (the latest)."""
    forms = set(handraiser_forms)
    found = None
    for a in activities:
        if a.get("type") == "form_submitted" and a.get("detail") in forms:
            found = str(a["detail"])
    return found


def since(period: str, now: datetime) -> datetime | None:
    days = PERIODS.get(period)
    return None if days is None else now - timedelta(days=days)


# ---------------------------------------------------------------- charts (SVG geometry)

DONUT_RADIUS = 42.0
DONUT_CIRCUMFERENCE = 2 * math.pi * DONUT_RADIUS


def bars(rows: Iterable[tuple[str, float | None]], scale: float | None = None) -> list[dict[str, Any]]:
    """Horizontal bars: each row's share of the scale (the largest value by default), 0-100."""
    rows = list(rows)
    top = scale if scale is not None else max((v or 0 for _, v in rows), default=0)
    return [
        {"label": label, "value": value, "pct": round(100 * (value or 0) / top, 1) if top else 0.0}
        for label, value in rows
    ]


def donut(fraction: float | None) -> dict[str, Any]:
    """A ring's dash for a share (0-1); None (no data) draws an empty ring."""
    f = 0.0 if fraction is None else min(max(fraction, 0.0), 1.0)
    filled = round(DONUT_CIRCUMFERENCE * f, 2)
    return {
        "radius": DONUT_RADIUS,
        "dash": f"{filled} {round(DONUT_CIRCUMFERENCE - filled, 2)}",
        "pct": None if fraction is None else round(100 * f),
    }


def agenda(board: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The review board's items by topic: junk, recycle, unreachable; and those handed back after
    fewer than two touches (whatever the verdict)."""
    out: dict[str, list[Mapping[str, Any]]] = {"junk": [], "recycle": [], "unreachable": [], "few_touches": []}
    for item in board:
        if item.get("disposition") in out:
            out[str(item["disposition"])].append(item)
        if (item.get("touches") or 0) < 2:
            out["few_touches"].append(item)
    return out


def describe_condition(cond: Mapping[str, Any]) -> str:
    """A rule's condition as a person reads it: ``job_title matches …``, ``company_size 50-5000``."""
    field = str(cond.get("field", "?"))
    if "equals" in cond:
        return f"{field} = {cond['equals']}"
    if "in" in cond:
        return f"{field} ∈ {{{', '.join(str(v) for v in cond['in'])}}}"
    if "matches" in cond:
        return f"{field} ~ /{cond['matches']}/"
    if "between" in cond:
        lo, hi = (int(v) if float(v).is_integer() else v for v in cond["between"])
        return f"{field} {lo}–{hi}"
    if "exists" in cond:
        return f"{field} {'✓' if cond['exists'] else '∅'}"
    return field


def public_embed(embed: dict[str, Any], intake_base: str, console_base: str) -> dict[str, Any]:
    """Intake's paste-able snippet as the browser reaches it: embedded, intake answered an in-process
    call, so its addresses are the console's own (the same app); distributed, intake names its
    public address (LEADRELAY_PUBLIC_BASE_URL) or the one the console calls it at."""
    if intake_base.rstrip("/") != IN_PROCESS:
        return embed
    public = console_base.rstrip("/")

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(IN_PROCESS, public)
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        return value

    return dict(fix(embed))
