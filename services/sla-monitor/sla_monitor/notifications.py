"""Who hears of what: notifications of handoffs, SLA warnings and breaches, and recycled leads.

The rules file's ``notifications`` section names the endpoints: Standard
Webhooks receivers (a CRM...), Slack incoming webhooks (per territory, per
person, or for every lead), and e-mail over SMTP to the people an event
concerns. Who is concerned:

- ``lead.assigned``: the rep (the handoff packet, the deadlines, a link);
- ``sla.warning``: the rep, ``sla.warn_before`` a deadline;
- ``sla.breached``: the rep and the managers of the lead's territory;
- ``lead.recycled``: marketing (``notifications.marketing``), with the reason.

A notification is decided in the transaction that handles its cause (an
assignment or a disposition from the bus, a warning or a breach claimed by the
timer): one ``notifications`` row, unique per cause, and one ``deliveries`` row
per endpoint, committed with the state change or not at all, like an outbox.
The delivery job (:mod:`sla_monitor.delivery`) sends them after the commit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook as Signer

from leadrelay.events import Contact, Disposition, DispositionRecorded, Handoff, LeadAssigned
from leadrelay.logging import get_logger
from leadrelay.rules import NotificationType, Person, Rules, RulesError
from leadrelay.settings import Settings, environment_secret
from leadrelay.unit_of_work import UnitOfWork
from sla_monitor import repository
from sla_monitor.domain import RUNNING
from sla_monitor.models import Delivery, Notification, SlaClock
from sla_monitor.models import Handoff as HandoffRow

if TYPE_CHECKING:
    from sla_monitor.resources import SlaContext

log = get_logger("sla_monitor.notifications")

WEBHOOK, SLACK, EMAIL = "webhook", "slack", "email"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
SMTP_LANE = "smtp"  # every e-mail goes through the one SMTP server: one concurrency pool
CLAIM_BATCH = 200
MIN_SECRET_BYTES = 24  # the Standard Webhooks specification asks for 24 to 64 random bytes
_MESSAGE_IDS = uuid.UUID("3f0c6f8e-2b8e-4d0a-9a3e-6c1d2f4b7a55")


class NotificationConfigError(RulesError):
    """The notifications section cannot work in this environment (a secret or a setting is missing)."""


# ------------------------------------------------------------------ endpoints, resolved at start-up


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str
    signers: tuple[Signer, ...]  # one per secret: two during a rotation, each request carries both signatures
    events: frozenset[NotificationType]


@dataclass(frozen=True)
class SlackEndpoint:
    id: str
    url: str  # a secret: it is never logged nor shown
    territory: str | None
    person: str | None
    events: frozenset[NotificationType]


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    tls: str  # starttls | tls | none
    username: str | None
    password: SecretStr | None
    sender: str
    events: frozenset[NotificationType]


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


def _secret_problem(secret: str) -> str | None:
    if not secret.startswith("whsec_"):
        return 'does not start with "whsec_"'
    try:
        raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return 'is not "whsec_" followed by base64'
    if len(raw) < MIN_SECRET_BYTES:
        return f"is {len(raw)} bytes long, fewer than {MIN_SECRET_BYTES}"
    return None


class Notifier:
    """The notifications section resolved against the environment: secrets, Slack URLs and SMTP
    settings are checked once, at start-up of sla-monitor, with errors naming the variable."""

    def __init__(self, rules: Rules, settings: Settings) -> None:
        self.rules = rules
        self.settings = settings
        config = rules.notifications
        problems: list[str] = []
        self.webhooks: dict[str, WebhookEndpoint] = {}
        for i, hook in enumerate(config.webhooks):
            where = f"notifications.webhooks.{i}.secret_env"
            value = environment_secret(hook.secret_env)
            if value is None:
                problems.append(
                    f"{where}: the environment variable {hook.secret_env} is not set (webhook {hook.id!r} is signed with it)"
                )
                continue
            secrets = value.get_secret_value().split()
            bad = [(n, p) for n, s in enumerate(secrets, 1) if (p := _secret_problem(s)) is not None]
            if bad:
                problems += [
                    f"{where}: secret {n} in {hook.secret_env} {problem} (generate one as the README shows)"
                    for n, problem in bad
                ]
                continue
            self.webhooks[hook.id] = WebhookEndpoint(
                id=hook.id, url=hook.url, signers=tuple(Signer(s) for s in secrets), events=frozenset(hook.events)
            )
        self.slack: dict[str, SlackEndpoint] = {}
        for i, slack in enumerate(config.slack):
            where = f"notifications.slack.{i}.url_env"
            url = environment_secret(slack.url_env)
            if url is None:
                problems.append(
                    f"{where}: the environment variable {slack.url_env} is not set (Slack webhook {slack.id!r})"
                )
                continue
            parts = urlsplit(url.get_secret_value().strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                problems.append(f"{where}: {slack.url_env} does not hold an http(s) URL")
                continue
            self.slack[slack.id] = SlackEndpoint(
                id=slack.id,
                url=url.get_secret_value().strip(),
                territory=slack.territory,
                person=slack.person,
                events=frozenset(slack.events),
            )
        self.smtp: Smtp | None = None
        if config.email is not None:
            if not settings.smtp_host:
                problems.append("notifications.email: set LEADRELAY_SMTP_HOST (the SMTP server e-mails go through)")
            if not settings.smtp_from or "@" not in parseaddr(settings.smtp_from)[1]:
                problems.append(
                    'notifications.email: set LEADRELAY_SMTP_FROM (e.g. "Leadrelay <leadrelay@example.com>")'
                )
            if settings.smtp_host and settings.smtp_from:
                self.smtp = Smtp(
                    host=settings.smtp_host,
                    port=settings.smtp_port,
                    tls=settings.smtp_tls,
                    username=settings.smtp_username,
                    password=settings.smtp_password,
                    sender=settings.smtp_from,
                    events=frozenset(config.email.events),
                )
        if problems:
            raise NotificationConfigError("sla-monitor cannot send notifications:\n  " + "\n  ".join(problems))
        self.marketing = [Recipient(person_id=None, name="Marketing", email=a) for a in config.marketing.emails]
        self.retry_for = timedelta(seconds=settings.notify_retry_for_seconds)
        self.wakeup = asyncio.Event()

    # ---- who hears of what

    def hears(self, type_: NotificationType) -> bool:
        """Whether any endpoint is configured for this type (if none, nothing needs looking up)."""
        return (
            any(type_ in w.events for w in self.webhooks.values())
            or any(type_ in s.events for s in self.slack.values())
            or (self.smtp is not None and type_ in self.smtp.events)
        )

    def targets(self, type_: NotificationType, territory: str | None, recipients: Iterable[Recipient]) -> list[Target]:
        people = list(recipients)
        person_ids = {r.person_id for r in people if r.person_id}
        out = [
            Target(endpoint=f"{WEBHOOK}:{w.id}", channel=WEBHOOK, lane=f"{WEBHOOK}:{w.id}")
            for w in self.webhooks.values()
            if type_ in w.events
        ]
        for s in self.slack.values():
            if type_ not in s.events:
                continue
            if s.territory is not None and s.territory != territory:
                continue
            if s.person is not None and s.person not in person_ids:
                continue
            out.append(Target(endpoint=f"{SLACK}:{s.id}", channel=SLACK, lane=f"{SLACK}:{s.id}"))
        if self.smtp is not None and type_ in self.smtp.events:
            seen: set[str] = set()
            for r in people:
                if r.email and r.email.lower() not in seen:
                    seen.add(r.email.lower())
                    out.append(
                        Target(
                            endpoint=f"{EMAIL}:{r.email.lower()}",
                            channel=EMAIL,
                            lane=SMTP_LANE,
                            recipient=r.email,
                            recipient_name=r.name,
                        )
                    )
        return out

    def link(self, lead_id: str) -> str:
        """The lead's page in the console: people follow it from a phone's mail app or Slack, where
        no bearer token goes along (the console asks them to sign in, then shows the lead)."""
        base = self.settings.console_url or self.settings.public_base_url
        return f"{base.rstrip('/')}/leads/{quote(lead_id, safe='')}"

    def person_ref(self, person_id: str) -> PersonRef:
        person = self.rules.person(person_id)
        if person is None:  # no longer in the rules: name it by id
            return PersonRef(id=person_id)
        return PersonRef(id=person.id, name=person.name, email=person.email)

    def recipient(self, person_id: str) -> list[Recipient]:
        person = self.rules.person(person_id)
        return [Recipient.of(person)] if person is not None else [Recipient(person_id=person_id, name=None, email=None)]

    # ---- waking the delivery job (a unit of work that wrote deliveries does, once committed)

    def wake(self) -> None:
        self.wakeup.set()


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


PAYLOADS: dict[NotificationType, type[_Payload]] = {
    NotificationType.LEAD_ASSIGNED: LeadAssignedData,
    NotificationType.SLA_WARNING: SlaWarningData,
    NotificationType.SLA_BREACHED: SlaBreachedData,
    NotificationType.LEAD_RECYCLED: LeadRecycledData,
}


def message_id(key: str, endpoint: str) -> str:
    """The ``webhook-id``: derived from the notification and the endpoint, so it is the same on every
    attempt and even if the notification were decided again."""
    return "msg_" + uuid.uuid5(_MESSAGE_IDS, f"{key}|{endpoint}").hex


def notify(
    notifier: Notifier,
    uow: UnitOfWork,
    type_: NotificationType,
    key: str,
    data: _Payload,
    occurred_at: datetime,
    territory: str | None,
    recipients: Iterable[Recipient],
) -> int:
    """Write the notification and one delivery per endpoint in the caller's transaction; returns
    how many deliveries (none: nobody is configured to hear of it, and nothing is written)."""
    targets = notifier.targets(type_, territory, recipients)
    if not targets:
        return 0
    lead_id = str(getattr(data, "lead_id", ""))
    uow.session.add(
        Notification(
            key=key,
            type=type_.value,
            lead_id=lead_id,
            data=data.model_dump(mode="json"),
            occurred_at=occurred_at,
            created_at=uow.now,
            deliveries=[
                Delivery(
                    endpoint=t.endpoint,
                    channel=t.channel,
                    lane=t.lane,
                    recipient=t.recipient,
                    recipient_name=t.recipient_name,
                    message_id=message_id(key, t.endpoint),
                    status=PENDING,
                    attempts=0,
                    created_at=uow.now,
                    next_attempt_at=uow.now,
                    retry_until=uow.now + notifier.retry_for,
                )
                for t in targets
            ],
        )
    )
    uow.wake_after_commit(notifier.wake)
    log.info("notification_created", type=type_.value, lead_id=lead_id, deliveries=len(targets))
    return len(targets)


# ------------------------------------------------------------------ hooks called by sla_monitor.service


def _contact(row: HandoffRow | None) -> Contact | None:
    return Contact.model_validate(row.contact) if row is not None else None


async def lead_assigned(
    notifier: Notifier,
    uow: UnitOfWork,
    rows: dict[str, HandoffRow],
    event_: LeadAssigned,
    deadlines: dict[str, datetime],
    first: bool,
) -> None:
    """Keep the lead's latest handoff (``rows``: the batch's, see ``repository.handoffs_of``); tell
    the rep of the assignment (once per lead and cycle)."""
    row = rows.get(event_.lead_id)
    if row is None or row.cycle <= event_.cycle:
        if row is None:
            row = rows[event_.lead_id] = HandoffRow(lead_id=event_.lead_id)
            uow.session.add(row)
        row.cycle = event_.cycle
        row.rep_id = event_.rep_id
        row.territory = event_.territory
        row.qualification = event_.handoff.qualification.value
        row.score = event_.handoff.score
        row.contact = event_.handoff.contact.model_dump(mode="json")
        row.assigned_at = event_.assigned_at
    if not first:
        return  # the clocks of this cycle existed already: so did its notification
    data = LeadAssignedData(
        lead_id=event_.lead_id,
        cycle=event_.cycle,
        link=notifier.link(event_.lead_id),
        rep=notifier.person_ref(event_.rep_id),
        territory=event_.territory,
        assigned_at=event_.assigned_at,
        deadlines=deadlines,
        handoff=event_.handoff,
    )
    notify(
        notifier,
        uow,
        NotificationType.LEAD_ASSIGNED,
        f"lead.assigned:{event_.lead_id}:{event_.cycle}",
        data,
        event_.assigned_at,
        event_.territory,
        notifier.recipient(event_.rep_id),
    )


RECYCLING = tuple(d for d in Disposition if d.returns_to_marketing)


async def disposition_recorded(
    notifier: Notifier, uow: UnitOfWork, rows: dict[str, HandoffRow], data: DispositionRecorded
) -> None:
    """Tell marketing of a lead sales sent back (recycle, unreachable), with the reason."""
    if data.disposition not in RECYCLING:
        return
    row = rows.get(data.lead_id)
    payload = LeadRecycledData(
        lead_id=data.lead_id,
        cycle=row.cycle if row is not None else None,
        link=notifier.link(data.lead_id),
        disposition=data.disposition.value,
        reason=data.reason,
        rep=notifier.person_ref(data.rep_id),
        territory=row.territory if row is not None else None,
        recorded_at=data.recorded_at,
        contact=_contact(row),
    )
    notify(
        notifier,
        uow,
        NotificationType.LEAD_RECYCLED,
        f"lead.recycled:{data.lead_id}:{data.recorded_at.isoformat()}",
        payload,
        data.recorded_at,
        payload.territory,
        notifier.marketing,
    )


def _matching(row: HandoffRow | None, clock: SlaClock) -> HandoffRow | None:
    """The handoff of the clock's own cycle (a newer cycle's contact would be a different handoff)."""
    return row if row is not None and row.cycle == clock.cycle else None


async def breached(notifier: Notifier, uow: UnitOfWork, clocks: list[SlaClock]) -> None:
    """Tell the rep and the territory's managers of each breach (called in the breach's transaction)."""
    if not clocks or not notifier.hears(NotificationType.SLA_BREACHED):
        return
    handoffs = await repository.handoffs_of(uow.session, list({c.lead_id for c in clocks}))
    for clock in clocks:
        row = _matching(handoffs.get(clock.lead_id), clock)
        managers = notifier.rules.managers_of(clock.territory)
        data = SlaBreachedData(
            lead_id=clock.lead_id,
            cycle=clock.cycle,
            link=notifier.link(clock.lead_id),
            clock=clock.name,
            due_at=clock.due_at,
            breached_at=uow.now,
            rep=notifier.person_ref(clock.rep_id),
            territory=clock.territory,
            managers=[PersonRef(id=m.id, name=m.name, email=m.email) for m in managers],
            qualification=row.qualification if row is not None else None,
            contact=_contact(row),
        )
        notify(
            notifier,
            uow,
            NotificationType.SLA_BREACHED,
            f"sla.breached:{clock.lead_id}:{clock.cycle}:{clock.name}",
            data,
            uow.now,
            clock.territory,
            notifier.recipient(clock.rep_id) + [Recipient.of(m) for m in managers],
        )


async def fire_warnings(ctx: SlaContext) -> int:
    """Warn of every running clock whose warning time has come and whose deadline has not passed,
    once: the clocks are claimed with ``FOR UPDATE SKIP LOCKED`` and marked ``warned_at`` in the
    transaction that writes the notification. Returns how many fired."""
    fired = 0
    async with ctx.unit_of_work() as uow:
        query = (
            select(SlaClock)
            .where(
                SlaClock.status == RUNNING,
                SlaClock.warned_at.is_(None),
                SlaClock.warn_at <= uow.now,
                SlaClock.due_at > uow.now,
            )
            .order_by(SlaClock.warn_at)
            .limit(CLAIM_BATCH)
            .with_for_update(skip_locked=True)
        )
        clocks = list((await uow.session.execute(query)).scalars())
        if not clocks:
            return 0
        notifier = ctx.resources.notifier
        heard = notifier.hears(NotificationType.SLA_WARNING)
        handoffs = await repository.handoffs_of(uow.session, list({c.lead_id for c in clocks})) if heard else {}
        for clock in clocks:
            clock.warned_at = uow.now
            log.info("sla_warning", lead_id=clock.lead_id, clock=clock.name, due_at=clock.due_at.isoformat())
            if not heard:
                continue
            row = _matching(handoffs.get(clock.lead_id), clock)
            data = SlaWarningData(
                lead_id=clock.lead_id,
                cycle=clock.cycle,
                link=notifier.link(clock.lead_id),
                clock=clock.name,
                due_at=clock.due_at,
                warned_at=uow.now,
                rep=notifier.person_ref(clock.rep_id),
                territory=clock.territory,
                qualification=row.qualification if row is not None else None,
                contact=_contact(row),
            )
            notify(
                notifier,
                uow,
                NotificationType.SLA_WARNING,
                f"sla.warning:{clock.lead_id}:{clock.cycle}:{clock.name}",
                data,
                uow.now,
                clock.territory,
                notifier.recipient(clock.rep_id),
            )
        fired = len(clocks)

    return fired


async def warning_loop(ctx: SlaContext) -> None:
    """Background job: warnings before deadlines, checked every SLA tick (only with sla.warn_before)."""
    if ctx.rules.sla.warn_before is None:
        return
    while not ctx.stopping.is_set():
        try:
            while await fire_warnings(ctx) >= CLAIM_BATCH and not ctx.stopping.is_set():
                pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("sla_warnings_failed", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), timeout=ctx.settings.sla_tick_seconds)


def payload(type_: str, data: dict[str, Any]) -> _Payload:
    """A stored notification's data, typed again (for rendering)."""
    return PAYLOADS[NotificationType(type_)].model_validate(data)
