"""Intake's use cases: turn a form submission or a behaviour event into the event scoring reads.

Intake keeps no state of its own: the lead id is derived from the address, and
a client's retry key gives a stable event id, so retries are deduplicated by
every consumer's inbox. Building the event (:meth:`Intake.form_submission`,
:meth:`Intake.activity`) is pure; :meth:`Intake.accept` publishes it and
returns only once the broker acknowledged it. The HTTP routes and the
benchmark both go through here.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from intake.domain import ConsentSource, consent_text, lead_id_for, normalise_submission, take_consent
from intake.segment import form_visitors
from intake.website import missing
from leadrelay.bus import Bus
from leadrelay.clock import Clock
from leadrelay.events import (
    ActivityRecorded,
    ActivityType,
    Actor,
    ConsentEvidence,
    Envelope,
    Event,
    FormSubmitted,
)
from leadrelay.logging import get_logger
from leadrelay.rules import Rules

log = get_logger("intake")
SOURCE = "/leadrelay/intake"
# Longer than the producer's own delivery timeout (30 s): a failure then means the event was not stored.
PUBLISH_TIMEOUT = 35.0
# A tracking client's clock may run a little fast; beyond this an event "in the future" is refused.
CLOCK_SKEW = timedelta(minutes=5)


class UnknownForm(LookupError):
    def __init__(self, form_id: str, known: list[str]) -> None:
        super().__init__(f"unknown form {form_id!r}; known forms: {', '.join(known)}")


class Invalid(ValueError):
    """Field errors, in the shape of FastAPI's 422 (``loc``, ``msg``, ``type``)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


class NotStored(RuntimeError):
    """The broker did not acknowledge the event: it was not stored, the client should retry."""


@dataclass(frozen=True)
class Accepted:
    lead_id: str
    event_id: str


def _invalid(loc: str, msg: str) -> Invalid:
    return Invalid([{"loc": ["body", loc], "msg": msg, "type": "value_error"}])


class Intake:
    def __init__(self, rules: Rules, namespace: uuid.UUID, clock: Clock, bus: Bus | None = None) -> None:
        self.rules = rules
        self.namespace = namespace
        self.clock = clock
        self.bus = bus

    def event_id(self, scope: str, client_key: str | None) -> str:
        """Stable for a client's retry key (so the inboxes drop the retry), random otherwise."""
        return str(uuid.uuid5(self.namespace, f"{scope}:{client_key}")) if client_key else str(uuid.uuid4())

    def _envelope(self, data: Event, event_id: str) -> Envelope:
        return Envelope.new(data, source=SOURCE, time=self.clock.now(), event_id=event_id)

    def form_submission(
        self,
        form_id: str,
        fields: dict[str, Any],
        client_key: str | None = None,
        *,
        via: ConsentSource = "form",
        consent: ConsentEvidence | None = None,
    ) -> Envelope:
        """A form's fields, normalised, as a ``FormSubmitted`` event; raises :class:`UnknownForm`
        or :class:`Invalid`. The form's consent field (``forms[].consent``) becomes the event's
        consent evidence, unless ``consent`` (e.g. HubSpot's legalConsentOptions) is given."""
        form = self.rules.form(form_id)
        if form is None:
            raise UnknownForm(form_id, [f.id for f in self.rules.forms])
        now = self.clock.now()
        fields = dict(fields)
        ticked, consent_errors = take_consent(form, fields, consent is not None)
        visitors, fields, visitor_errors = form_visitors(fields, self.rules.tracking.visitor_fields)
        result = normalise_submission(fields)
        # and what the rules file requires of this form (its required fields, a required consent)
        errors = result.errors + visitor_errors + missing(form, fields) + consent_errors
        if result.contact is None or errors:
            raise Invalid(errors)
        if consent is None and ticked is not None and form.consent is not None:
            consent = ConsentEvidence(
                given=True,
                text=consent_text(form.consent, ticked),
                language=ticked,
                given_at=now,
                source=via,
                form_id=form_id,
                page_url=result.page_url,
            )
        data = FormSubmitted(
            lead_id=lead_id_for(result.contact.email, self.namespace),
            form_id=form_id,
            submitted_at=now,
            contact=result.contact,
            custom=result.custom,
            page_url=result.page_url,
            consent=consent,
            visitors=visitors,
        )
        return self._envelope(data, self.event_id(f"form:{form_id}", client_key))

    def decoy_lead_id(self, fields: dict[str, Any]) -> str:
        """The lead id a real submission of these fields would be answered with (a bot caught by
        the honeypot must not tell its answer from a real one); random when there is none."""
        result = normalise_submission(fields)
        if result.contact is None:
            return str(uuid.uuid4())
        return lead_id_for(result.contact.email, self.namespace)

    def activity(
        self,
        activity: ActivityType,
        *,
        email: str | None,
        lead_id: uuid.UUID | None,
        occurred_at: datetime | None,
        url: str | None,
        properties: dict[str, str],
        client_key: str | None = None,
        actor: Actor | None = None,
    ) -> Envelope:
        """A behaviour event of a lead known by its (normalised) email or its id."""
        now = self.clock.now()
        if occurred_at is not None and occurred_at > now + CLOCK_SKEW:
            raise _invalid("occurred_at", "in the future")
        if email:
            derived = lead_id_for(email, self.namespace)
            if lead_id is not None and str(lead_id) != derived:
                raise _invalid("lead_id", "does not belong to this email")
        elif lead_id is not None:
            derived = str(lead_id)
        else:
            raise _invalid("email", "give the lead's email or lead_id")
        data = ActivityRecorded(
            lead_id=derived,
            email=email,
            activity=activity,
            occurred_at=occurred_at or now,
            url=url,
            properties=properties,
            actor=actor,
        )
        return self._envelope(data, self.event_id("event", client_key))

    async def accept(self, envelope: Envelope, timeout: float = PUBLISH_TIMEOUT) -> Accepted:
        """Publish the event; returns once the broker acknowledged it, raises :class:`NotStored` if not."""
        if self.bus is None:
            raise RuntimeError("this Intake has no bus to publish to")
        try:
            await asyncio.wait_for(self.bus.publish([envelope.to_record()]), timeout=timeout)
        except Exception as exc:
            log.error("publish_failed", lead_id=envelope.subject, event_id=envelope.id, error=repr(exc))
            raise NotStored("the event could not be stored; retry later") from exc
        log.info("event_accepted", lead_id=envelope.subject, event_id=envelope.id, type=envelope.type)
        return Accepted(lead_id=envelope.subject, event_id=envelope.id)
