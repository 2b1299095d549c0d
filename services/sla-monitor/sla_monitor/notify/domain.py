"""The notifications' rules: what each notification says (the payloads, a webhook body's
``data``), where one goes (a target: an endpoint, its channel and lane), its stable ``webhook-id``,
which dispositions tell marketing, and how long to wait before trying a delivery again.

Pure: values in, values out; who is configured to hear of what is resolved once by
:class:`sla_monitor.notify.notifier.Notifier`.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from leadrelay.events import Contact, Disposition, Handoff
from leadrelay.rules import NotificationType, Person

WEBHOOK, SLACK, EMAIL = "webhook", "slack", "email"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
SMTP_LANE = "smtp"  # every e-mail goes through the one SMTP server: one concurrency pool
_MESSAGE_IDS = uuid.UUID("3f0c6f8e-2b8e-4d0a-9a3e-6c1d2f4b7a55")

# Dispositions that send the lead back to marketing: marketing hears of them.
RECYCLING = tuple(d for d in Disposition if d.returns_to_marketing)


@dataclass(frozen=True)
class Recipient:
    """Someone told by e-mail or per-person Slack: a configured person, or an address (marketing)."""

    person_id: str | None
    name: str | None
    email: str | None

    @classmethod
    def of(cls, person: Person) -> Recipient:
        return cls(person_id=person.id, name=person.name, email=person.email)


@dataclass(frozen=True)
class Target:
    """Where one notification goes: a delivery row's endpoint."""

    endpoint: str  # webhook:<id> | slack:<id> | email:<address>
    channel: str
    lane: str  # concurrency pool
    recipient: str | None = None
    recipient_name: str | None = None


def message_id(key: str, endpoint: str) -> str:
    """The ``webhook-id``: derived from the notification and the endpoint, so it is the same on every
    attempt and even if the notification were decided again."""
    return "msg_" + uuid.uuid5(_MESSAGE_IDS, f"{key}|{endpoint}").hex


def backoff(attempts: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds before the next attempt after ``attempts`` failures: exponential, capped, with jitter
    (between half and all of the step, so receivers coming back are not hit by every sender at once)."""
    step = min(cap, base * 2 ** max(0, attempts - 1))
    delay = random.uniform(step / 2, step)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def of_cycle(cycle: int | None, wanted: int) -> bool:
    """Whether the lead's latest assignment (of ``cycle``) is the one a clock of ``wanted`` belongs to
    (a newer cycle's contact would be a different handoff)."""
    return cycle is not None and cycle == wanted


# ------------------------------------------------------------------ payloads (a webhook body's "data")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonRef(_Payload):
    id: str
    name: str | None = None
    email: str | None = None


class LeadAssignedData(_Payload):
    lead_id: str
    cycle: int
    link: str
    rep: PersonRef
    territory: str
    assigned_at: datetime
    deadlines: dict[str, datetime]  # first_touch, disposition
    handoff: Handoff


class SlaWarningData(_Payload):
    lead_id: str
    cycle: int
    link: str
    clock: str  # first_touch | disposition
    due_at: datetime
    warned_at: datetime
    rep: PersonRef
    territory: str
    qualification: str | None
    contact: Contact | None


class SlaBreachedData(_Payload):
    lead_id: str
    cycle: int
    link: str
    clock: str
    due_at: datetime
    breached_at: datetime
    rep: PersonRef
    territory: str
    managers: list[PersonRef]
    qualification: str | None
    contact: Contact | None


class LeadRecycledData(_Payload):
    lead_id: str
    cycle: int | None
    link: str
    disposition: str  # recycle | unreachable
    reason: str | None
    rep: PersonRef
    territory: str | None
    recorded_at: datetime
    contact: Contact | None


Payload = _Payload

PAYLOADS: dict[NotificationType, type[_Payload]] = {
    NotificationType.LEAD_ASSIGNED: LeadAssignedData,
    NotificationType.SLA_WARNING: SlaWarningData,
    NotificationType.SLA_BREACHED: SlaBreachedData,
    NotificationType.LEAD_RECYCLED: LeadRecycledData,
}


def payload(type_: str, data: dict[str, Any]) -> _Payload:
    """A stored notification's data, typed again (for rendering)."""
    return PAYLOADS[NotificationType(type_)].model_validate(data)
