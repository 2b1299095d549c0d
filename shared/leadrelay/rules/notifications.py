"""Who is told of what (sla-monitor's): webhooks, Slack, e-mail, and marketing's addresses."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, field_validator, model_validator

from leadrelay.rules.values import StrictModel

# ---------------------------------------------------------------- notifications


class NotificationType(StrEnum):
    """What Leadrelay tells people and systems of (the ``type`` of a webhook body)."""

    LEAD_ASSIGNED = "lead.assigned"  # to the rep: the handoff packet, the deadlines, a link
    SLA_WARNING = "sla.warning"  # to the rep, sla.warn_before a deadline
    SLA_BREACHED = "sla.breached"  # to the rep and their territory's managers
    LEAD_RECYCLED = "lead.recycled"  # to marketing: sales sent the lead back (recycle, unreachable)


_ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"
_ENDPOINT_ID = r"^[a-z0-9][a-z0-9_.-]*$"


def _email_address(value: str) -> str:
    try:
        return str(validate_email(value.strip(), check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not an e-mail address: {exc}") from None


class Webhook(StrictModel):
    """A system (a CRM...) told of events over HTTPS, signed per the Standard Webhooks specification."""

    id: str = Field(pattern=_ENDPOINT_ID)
    url: str
    secret_env: str = Field(pattern=_ENV_NAME, description='environment variable holding the "whsec_..." secret')
    events: list[NotificationType] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class SlackWebhook(StrictModel):
    """A Slack incoming webhook: a territory's channel, one person, or (neither) every lead's events."""

    id: str = Field(pattern=_ENDPOINT_ID)
    url_env: str = Field(pattern=_ENV_NAME, description="environment variable holding the incoming webhook's URL")
    territory: str | None = Field(default=None, description="only events about this territory's leads")
    person: str | None = Field(default=None, description="only events this person is told of")
    events: list[NotificationType] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_scope(self) -> SlackWebhook:
        if self.territory is not None and self.person is not None:
            raise ValueError(f"slack webhook {self.id!r}: give territory or person, not both")
        return self


class EmailNotifications(StrictModel):
    """E-mail over SMTP (LEADRELAY_SMTP_*) to each person an event concerns, at their address."""

    events: list[NotificationType] = Field(min_length=1)


class Marketing(StrictModel):
    emails: list[Annotated[str, AfterValidator(_email_address)]] = Field(
        default_factory=list, description="who hears by e-mail of leads sales sent back (lead.recycled)"
    )


class Notifications(StrictModel):
    webhooks: list[Webhook] = Field(default_factory=list)
    slack: list[SlackWebhook] = Field(default_factory=list)
    email: EmailNotifications | None = None
    marketing: Marketing = Field(default_factory=Marketing)


def check_notifications(notifications: Notifications, territories: set[str], people: set[str]) -> list[str]:
    """What is wrong with the notifications, given the territories' and everyone's ids (one line each)."""
    problems: list[str] = []
    n = notifications
    ids = [w.id for w in n.webhooks] + [s.id for s in n.slack]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        problems.append(f"notifications: endpoint id(s) used twice across webhooks and slack: {', '.join(dupes)}")
    for s in n.slack:
        if s.territory is not None and s.territory not in territories:
            problems.append(f"notifications.slack {s.id!r}: unknown territory {s.territory!r}")
        if s.person is not None and s.person not in people:
            problems.append(f"notifications.slack {s.id!r}: unknown person {s.person!r}")
    if n.email is not None and NotificationType.LEAD_RECYCLED in n.email.events and not n.marketing.emails:
        problems.append("notifications.email: lead.recycled goes to notifications.marketing.emails, which is empty")
    return problems
