"""Intake's use cases: turn a form submission or a behaviour event into the event scoring reads.

Intake keeps no state of its own beside its spool: the lead id is derived
from the address, and a client's retry key gives a stable event id, so retries
are deduplicated by every consumer's inbox. Building the event
(:meth:`Intake.form_submission`, :meth:`Intake.activity`) is pure;
:meth:`Intake.accept` stores it, on the broker or in the spool
(``intake.spool``), and returns once it is stored. The HTTP routes and the
benchmark both go through here.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from intake.domain import (
    ConsentSource,
    activity_lead,
    consent_text,
    lead_id_for,
    normalise_submission,
    read_form_post,
)
from intake.spool import ACCEPTED, Spool, SpoolFull
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
from leadrelay.unavailable import Unavailable

log = get_logger("intake")
SOURCE = "/leadrelay/intake"
# Without a spool: longer than the producer's own delivery timeout (30 s), so a failure means the
# event was not stored.
PUBLISH_TIMEOUT = 35.0
# With a spool: how long a direct publish may take before the event is spooled instead.
DIRECT_TIMEOUT = 0.3


class UnknownForm(LookupError):
    def __init__(self, form_id: str, known: list[str]) -> None:
        super().__init__(f"unknown form {form_id!r}; known forms: {', '.join(known)}")


class Invalid(ValueError):
    """Field errors, in the shape of FastAPI's 422 (``loc``, ``msg``, ``type``)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


class NotStored(RuntimeError):
    """Neither the broker nor the spool stored the event: the client should retry.
    ``dependency`` names what could not be reached (``kafka``, ``postgresql``, or both)."""

    def __init__(self, detail: str, dependency: str = "kafka") -> None:
        super().__init__(detail)
        self.dependency = dependency


@dataclass(frozen=True)
class Accepted:
    lead_id: str
    event_id: str


class Intake:
    def __init__(
        self,
        rules: Rules,
        namespace: uuid.UUID,
        clock: Clock,
        bus: Bus | None = None,
        spool: Spool | None = None,
        always_spool: bool = False,
        direct_timeout: float = DIRECT_TIMEOUT,
    ) -> None:
        self.rules = rules
        self.namespace = namespace
        self.clock = clock
        self.bus = bus
        self.spool = spool
        self.always_spool = always_spool
        self.direct_timeout = direct_timeout
        # Direct publishes that gave up waiting and were spooled: they may still be acknowledged.
        self._late: set[asyncio.Task[None]] = set()

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
        post = read_form_post(form, fields, self.rules.tracking.visitor_fields, consent is not None)
        result, ticked, visitors = post.normalised, post.consent_language, post.visitors
        if result.contact is None or post.errors:
            raise Invalid(post.errors)
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
        derived, errors = activity_lead(email, lead_id, occurred_at, now, self.namespace)
        if derived is None:
            raise Invalid(errors)
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
        """Store the event; returns once the broker acknowledged it or it is in the spool, raises
        :class:`NotStored` if neither."""
        if self.spool is None:
            return await self._publish_only(envelope, timeout)
        if self.always_spool:
            return await self._spool_first(envelope, self.spool)
        try:
            # Behind the events already waiting, if any (a look shared with concurrent requests).
            if await self.spool.put_if_waiting(envelope):
                return self._accepted(envelope, "spool")
        except SpoolFull as exc:
            raise NotStored("intake's spool is full and the broker is not taking its events; retry later") from exc
        except Unavailable as exc:
            if self.spool.known_nonempty:
                # Events wait in a spool we cannot reach: a later event of their lead must not overtake them.
                raise NotStored(
                    "events accepted earlier wait in the spool, which cannot be reached; retry later",
                    self.spool.db.dependency,
                ) from exc
        reason = await self._publish_within(envelope, self.direct_timeout)
        if reason is None:
            return self._accepted(envelope, "direct")
        try:
            await self.spool.put(envelope, reason)
        except (Unavailable, SpoolFull) as exc:
            log.error("spool_failed", lead_id=envelope.subject, event_id=envelope.id, error=repr(exc))
            raise NotStored(
                "neither the broker nor intake's spool can store the event; retry later",
                "kafka" if isinstance(exc, SpoolFull) else f"kafka,{self.spool.db.dependency}",
            ) from exc
        return self._accepted(envelope, "spool")

    async def _spool_first(self, envelope: Envelope, spool: Spool) -> Accepted:
        """``intake_spool=always``: every event through the spool; directly only if it cannot be written."""
        try:
            await spool.put(envelope, "always")
        except (Unavailable, SpoolFull) as exc:
            log.warning("spool_failed", lead_id=envelope.subject, event_id=envelope.id, error=repr(exc))
            if spool.known_nonempty or await self._publish_within(envelope, PUBLISH_TIMEOUT) is not None:
                raise NotStored(
                    "neither the broker nor intake's spool can store the event; retry later",
                    f"kafka,{spool.db.dependency}",
                ) from exc
            return self._accepted(envelope, "direct")
        return self._accepted(envelope, "spool")

    async def _publish_within(self, envelope: Envelope, timeout: float) -> str | None:
        """Publish; None once acknowledged within ``timeout``, else why not (``broker_error``,
        ``broker_slow``). A publish still in flight then is left to finish (its event is spooled as
        well: a second copy the inboxes drop)."""
        if self.bus is None:
            raise RuntimeError("this Intake has no bus to publish to")
        task = asyncio.ensure_future(self.bus.publish([envelope.to_record()]))
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if task in done:
            exc = task.exception()
            if exc is None:
                return None
            log.warning("publish_failed", lead_id=envelope.subject, event_id=envelope.id, error=repr(exc))
            return "broker_error"
        self._late.add(task)
        task.add_done_callback(self._late_done)
        log.warning("publish_slow", lead_id=envelope.subject, event_id=envelope.id, waited_seconds=timeout)
        return "broker_slow"

    def _late_done(self, task: asyncio.Task[None]) -> None:
        self._late.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its event is in the spool either way

    async def _publish_only(self, envelope: Envelope, timeout: float) -> Accepted:
        """Without a spool: publish and wait for the broker's acknowledgement."""
        if self.bus is None:
            raise RuntimeError("this Intake has no bus to publish to")
        try:
            await asyncio.wait_for(self.bus.publish([envelope.to_record()]), timeout=timeout)
        except Exception as exc:
            log.error("publish_failed", lead_id=envelope.subject, event_id=envelope.id, error=repr(exc))
            raise NotStored("the event could not be stored; retry later") from exc
        return self._accepted(envelope, "direct")

    def _accepted(self, envelope: Envelope, path: str) -> Accepted:
        ACCEPTED.labels(path).inc()
        log.info("event_accepted", lead_id=envelope.subject, event_id=envelope.id, type=envelope.type, path=path)
        return Accepted(lead_id=envelope.subject, event_id=envelope.id)


def unavailable(exc: NotStored) -> Unavailable:
    """The 503 of an event neither the broker nor the spool stored, naming what could not be reached."""
    return Unavailable(exc.dependency, repr(exc.__cause__), public=str(exc).removesuffix("; retry later"))
