"""What a notification says on each channel: a Standard Webhooks body, a Slack Block Kit message,
and an e-mail (plain text and HTML, one column, readable in a phone's mail app).

Every channel renders the same :class:`Summary` of the notification, so a rep reads the same facts
in Slack and in their inbox. Times are UTC (Slack shows them in the reader's own time zone).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any

from jinja2 import Environment, StrictUndefined

from leadrelay.events import Contact
from leadrelay.rules import Rules
from sla_monitor.notify.domain import (
    LeadAssignedData,
    LeadRecycledData,
    PersonRef,
    SlaBreachedData,
    SlaWarningData,
    payload,
)

CLOCKS = {"first_touch": "first touch", "disposition": "status (accept, recycle, junk or unreachable)"}
SHORT_CLOCKS = {"first_touch": "first touch", "disposition": "status"}
QUALIFICATIONS = {"handraiser": "handraiser (asked for sales)", "mql": "marketing-qualified lead"}
DISPOSITIONS = {"recycle": "recycled", "unreachable": "unreachable"}


def webhook_body(type_: str, occurred_at: datetime, data: dict[str, Any]) -> str:
    """The Standard Webhooks body: ``{"type", "timestamp", "data"}``, the same bytes on every attempt."""
    timestamp = occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")  # as the data's times
    body = {"type": type_, "timestamp": timestamp, "data": data}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------ the summary every channel renders


@dataclass
class Fact:
    label: str
    value: str
    href: str | None = None
    at: datetime | None = None  # a time: Slack shows it in the reader's time zone


@dataclass
class Summary:
    title: str  # e-mail subject, Slack header
    intro: str
    facts: list[Fact] = field(default_factory=list)
    link: str = ""
    link_label: str = "Open the lead"
    footer: str = ""


def when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%a %d %b %Y, %H:%M UTC")


def duration(delta: timedelta) -> str:
    minutes = max(0, round(delta.total_seconds() / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days {hours % 24} h" if hours % 24 else f"{hours // 24} days"


def who(contact: Contact | None, lead_id: str) -> str:
    if contact is None:
        return f"lead {lead_id}"
    name = contact.full_name or contact.email
    return f"{name} ({contact.company})" if contact.company else name


def person(ref: PersonRef) -> str:
    return ref.name or ref.id


def contact_facts(contact: Contact | None) -> list[Fact]:
    if contact is None:
        return []
    facts = [Fact("Name", contact.full_name)] if contact.full_name else []
    if contact.job_title:
        facts.append(Fact("Title", contact.job_title))
    if contact.company:
        size = f", {contact.company_size} employees" if contact.company_size else ""
        facts.append(Fact("Company", contact.company + size))
    facts.append(Fact("E-mail", contact.email, f"mailto:{contact.email}"))
    if contact.phone:
        facts.append(Fact("Phone", contact.phone, f"tel:{contact.phone}"))
    if contact.country:
        facts.append(Fact("Country", contact.country))
    return facts


def summarize(type_: str, data: dict[str, Any], rules: Rules, recipient: str | None = None) -> Summary:
    """The notification in words. ``recipient`` (an e-mail address) picks the footer's reason."""
    typed = payload(type_, data)
    if isinstance(typed, LeadAssignedData):
        return _assigned(typed, rules)
    if isinstance(typed, SlaWarningData):
        return _warning(typed)
    if isinstance(typed, SlaBreachedData):
        return _breached(typed, rules, recipient)
    assert isinstance(typed, LeadRecycledData)
    return _recycled(typed)


def _territory(rules: Rules, territory_id: str | None) -> str:
    return next((t.name for t in rules.territories if t.id == territory_id), territory_id or "no territory")


def _assigned(d: LeadAssignedData, rules: Rules) -> Summary:
    h = d.handoff
    first_touch = d.deadlines.get("first_touch")
    kind = QUALIFICATIONS.get(h.qualification.value, h.qualification.value)
    intro = f"{person(d.rep)}, {who(h.contact, d.lead_id)} is yours: a {kind} from {_territory(rules, d.territory)}."
    if first_touch is not None:
        intro += f" First touch by {when(first_touch)}."
    facts = contact_facts(h.contact)
    facts.append(Fact("Why", f"{kind}, score {h.score}"))
    reasons = sorted(h.reasons, key=lambda r: -r.points)[:4]
    if reasons:
        facts.append(Fact("Reasons", "; ".join(f"{r.rule} ({r.points:+d})" for r in reasons)))
    if h.activities:
        recent = h.activities[-3:]
        facts.append(
            Fact(
                "Recent activity", "; ".join(f"{a.type.value.replace('_', ' ')} {when(a.occurred_at)}" for a in recent)
            )
        )
    if h.account:
        facts.append(Fact("Named account", h.account))
    for name, at in d.deadlines.items():
        facts.append(Fact(f"{SHORT_CLOCKS.get(name, name).capitalize()} by", when(at), at=at))
    title = f"New lead for you: {who(h.contact, d.lead_id)}"
    if first_touch is not None:
        title += f", first touch by {first_touch.astimezone(UTC):%H:%M} UTC"
    return Summary(
        title=title,
        intro=intro,
        facts=facts,
        link=d.link,
        link_label="Open the handoff",
        footer="You get this because the lead was assigned to you in Leadrelay.",
    )


def _warning(d: SlaWarningData) -> Summary:
    clock = CLOCKS.get(d.clock, d.clock)
    left = duration(d.due_at - d.warned_at)
    return Summary(
        title=f"Due in {left}: {SHORT_CLOCKS.get(d.clock, d.clock)} on {who(d.contact, d.lead_id)}",
        intro=(
            f"{person(d.rep)}, the {clock} for {who(d.contact, d.lead_id)} is due {when(d.due_at)}, in {left}."
            " Log it in Leadrelay when it is done."
        ),
        facts=[*contact_facts(d.contact), Fact("Due", when(d.due_at), at=d.due_at)],
        link=d.link,
        footer="You get this because the lead is assigned to you in Leadrelay.",
    )


def _breached(d: SlaBreachedData, rules: Rules, recipient: str | None) -> Summary:
    clock = CLOCKS.get(d.clock, d.clock)
    territory = _territory(rules, d.territory)
    managers = ", ".join(person(m) for m in d.managers) or "none configured"
    is_rep = recipient is not None and d.rep.email is not None and recipient.lower() == d.rep.email.lower()
    is_manager = recipient is not None and any(m.email and recipient.lower() == m.email.lower() for m in d.managers)
    if is_rep:
        footer = "You get this because the lead is assigned to you in Leadrelay."
    elif is_manager:
        footer = f"You get this because you manage the territory {territory} in Leadrelay."
    else:
        footer = "Sent by Leadrelay."
    return Summary(
        title=f"SLA missed: {SHORT_CLOCKS.get(d.clock, d.clock)} on {who(d.contact, d.lead_id)} ({person(d.rep)})",
        intro=(
            f"No {clock} was logged for {who(d.contact, d.lead_id)} by {when(d.due_at)}."
            f" The lead is {person(d.rep)}'s, in {territory}."
        ),
        facts=[
            Fact("Rep", person(d.rep), f"mailto:{d.rep.email}" if d.rep.email else None),
            Fact("Deadline", when(d.due_at), at=d.due_at),
            Fact("Managers", managers),
            *contact_facts(d.contact),
        ],
        link=d.link,
        footer=footer,
    )


def _recycled(d: LeadRecycledData) -> Summary:
    how = DISPOSITIONS.get(d.disposition, d.disposition)
    reason = d.reason or ("the rep could not reach the lead" if d.disposition == "unreachable" else "none given")
    return Summary(
        title=f"Back to marketing: {who(d.contact, d.lead_id)} ({how})",
        intro=(
            f"{person(d.rep)} sent {who(d.contact, d.lead_id)} back to marketing ({how}). Reason: {reason}."
            " Its engagement starts again from zero; it goes back to sales when it qualifies anew."
        ),
        facts=[
            Fact("Disposition", how),
            Fact("Reason", reason),
            Fact("Rep", person(d.rep)),
            Fact("Recorded", when(d.recorded_at), at=d.recorded_at),
            *contact_facts(d.contact),
        ],
        link=d.link,
        footer="You get this because you are on marketing's list for leads sales hands back.",
    )


# ------------------------------------------------------------------ Slack (Block Kit)


def _mrkdwn(text: str) -> str:
    """Slack's escaping: &, < and > (everything else is literal)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_value(fact: Fact) -> str:
    if fact.at is not None:
        ts = int(fact.at.timestamp())
        return f"<!date^{ts}^{{date_short_pretty}} {{time}}|{_mrkdwn(fact.value)}>"
    if fact.href is not None and fact.href.startswith("mailto:"):
        return f"<{fact.href}|{_mrkdwn(fact.value)}>"
    return _mrkdwn(fact.value)


def slack_message(summary: Summary) -> dict[str, Any]:
    """An incoming webhook's message: ``text`` (notifications, fallback) and the Block Kit blocks."""
    fields = [{"type": "mrkdwn", "text": f"*{_mrkdwn(f.label)}*\n{_slack_value(f)}"[:2000]} for f in summary.facts[:10]]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": summary.title[:150], "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(summary.intro)[:3000]}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    if summary.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": summary.link_label},
                        "url": summary.link,
                        "style": "primary",
                    }
                ],
            }
        )
    return {"text": _mrkdwn(summary.title), "blocks": blocks}


# ------------------------------------------------------------------ e-mail

_HTML = Environment(autoescape=True, undefined=StrictUndefined).from_string(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ s.title }}</title>
</head>
<body style="margin:0;padding:0;background:#f4f5f7;">
<div style="max-width:600px;margin:0 auto;padding:16px;font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;color:#1f2328;">
<h1 style="font-size:20px;line-height:1.3;margin:0 0 12px;">{{ s.title }}</h1>
<p style="margin:0 0 16px;">{{ s.intro }}</p>
<div style="background:#ffffff;border-radius:8px;padding:4px 16px;">
{%- for f in s.facts %}
<div style="padding:10px 0;{% if not loop.last %}border-bottom:1px solid #e6e8eb;{% endif %}">
<div style="font-size:13px;color:#57606a;">{{ f.label }}</div>
<div style="word-wrap:break-word;">{% if f.href %}<a href="{{ f.href }}" style="color:#0b5cff;">{{ f.value }}</a>{% else %}{{ f.value }}{% endif %}</div>
</div>
{%- endfor %}
</div>
{%- if s.link %}
<p style="margin:24px 0;"><a href="{{ s.link }}" style="display:inline-block;padding:14px 22px;background:#0b5cff;color:#ffffff;text-decoration:none;border-radius:6px;font-weight:600;">{{ s.link_label }}</a></p>
{%- endif %}
<p style="font-size:13px;color:#57606a;margin:16px 0 0;">{{ s.footer }}</p>
</div>
</body>
</html>
"""
)


def email_text(summary: Summary) -> str:
    lines = [summary.intro, ""]
    lines += [f"{f.label}: {f.value}" for f in summary.facts]
    if summary.link:
        lines += ["", f"{summary.link_label}: {summary.link}"]
    if summary.footer:
        lines += ["", "-- ", summary.footer]
    return "\n".join(lines) + "\n"


def email_html(summary: Summary) -> str:
    return _HTML.render(s=summary)


def email_message(
    summary: Summary, *, sender: str, to: str, to_name: str | None, message_id: str, date: datetime
) -> EmailMessage:
    """A multipart/alternative message (text, then HTML); its Message-ID is the same on every attempt."""
    msg = EmailMessage()
    msg["Subject"] = summary.title
    msg["From"] = sender
    msg["To"] = formataddr((to_name, to)) if to_name else to
    msg["Date"] = format_datetime(date.astimezone(UTC))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "leadrelay"
    msg["Message-ID"] = f"<{message_id}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to a robot
    msg.set_content(email_text(summary))
    msg.add_alternative(email_html(summary), subtype="html")
    return msg
