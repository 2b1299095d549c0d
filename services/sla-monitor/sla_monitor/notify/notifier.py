"""Who hears of what: the rules file's ``notifications`` section resolved against the environment.

The section names the endpoints: Standard Webhooks receivers (a CRM...), Slack
incoming webhooks (per territory, per person, or for every lead), and e-mail
over SMTP to the people an event concerns. Who is concerned:

- ``lead.assigned``: the rep (the handoff packet, the deadlines, a link);
- ``sla.warning``: the rep, ``sla.warn_before`` a deadline;
- ``sla.breached``: the rep and the managers of the lead's territory;
- ``lead.recycled``: marketing (``notifications.marketing``), with the reason.

The :class:`Notifier` is built once, when sla-monitor starts (a missing secret
stops it, naming the variable); the use cases that decide a notification are in
:mod:`sla_monitor.notify.service`, the delivery job in
:mod:`sla_monitor.notify.delivery`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from urllib.parse import quote, urlsplit

from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook as Signer

from leadrelay.rules import NotificationType, Rules, RulesError
from leadrelay.settings import Settings, environment_secret
from sla_monitor.notify.domain import EMAIL, SLACK, SMTP_LANE, WEBHOOK, PersonRef, Recipient, Target

MIN_SECRET_BYTES = 24  # the Standard Webhooks specification asks for 24 to 64 random bytes


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
                    f"{where}: secret {n} in {hook.secret_env} {problem} (generate one as docs/notifications.md shows)"
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
