"""Events: topic names, the CloudEvents envelope and one typed payload per versioned type.

Events are facts in the past tense. Every event of a lead is keyed by its
``lead_id`` so it is ordered within its partition. On Kafka the CloudEvents
attributes travel as ``ce_*`` headers (binary content mode) and the payload is
the JSON value; the embedded bus carries exactly the same records.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic import AwareDatetime as _AwareDatetime

from leadrelay.inputs import InvalidText, MultilineText, Text, clean_text

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"

# Topics. Partition counts are what `leadrelay create-topics` creates; key = lead id.
LEADS_INTAKE = "leads.intake"
LEADS_SCORED = "leads.scored"
LEADS_ASSIGNED = "leads.assigned"
LEADS_FEEDBACK = "leads.feedback"
SLA_ALERTS = "sla.alerts"

TOPIC_PARTITIONS: dict[str, int] = {
    LEADS_INTAKE: 6,
    LEADS_SCORED: 6,
    LEADS_ASSIGNED: 6,
    LEADS_FEEDBACK: 6,
    SLA_ALERTS: 3,
}
DLQ_SUFFIX = ".dlq"
DLQ_PARTITIONS = 1


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


def all_topics() -> dict[str, int]:
    """Every topic the services use, dead-letter topics included, with its partition count."""
    topics = dict(TOPIC_PARTITIONS)
    topics.update({dlq_topic(t): DLQ_PARTITIONS for t in TOPIC_PARTITIONS})
    return topics


# ---------------------------------------------------------------- payloads


class ActivityType(StrEnum):
    PAGE_VIEWED = "page_viewed"
    EMAIL_OPENED = "email_opened"
    EMAIL_CLICKED = "email_clicked"
    CONTENT_DOWNLOADED = "content_downloaded"
    WEBINAR_REGISTERED = "webinar_registered"
    EVENT_ATTENDED = "event_attended"
    DEMO_REQUESTED = "demo_requested"
    FORM_SUBMITTED = "form_submitted"


class Qualification(StrEnum):
    MQL = "mql"
    HANDRAISER = "handraiser"


class LeadStatus(StrEnum):
    LEAD = "lead"  # known, below the threshold: marketing nurtures it
    MQL = "mql"  # qualified by score, handed to sales
    HANDRAISER = "handraiser"  # asked for sales, handed to sales at once
    DISQUALIFIED = "disqualified"  # caught by a disqualifier (competitor, unserved country...)
    ACCEPTED = "accepted"  # sales accepted it (SAL)
    RECYCLED = "recycled"  # back to marketing for nurturing; may qualify again
    JUNK = "junk"  # sales says it will never qualify


class Channel(StrEnum):
    CALL = "call"
    EMAIL = "email"
    MEETING = "meeting"
    SOCIAL = "social"


class Disposition(StrEnum):
    """Sales' verdict on a lead. What each one does is written here once, on the contract, and
    every service and the console read it from here: routing frees the rep's slot, sla-monitor
    closes the queue row and stops the clocks, scoring sets the lead's status, feedback asks for a
    reason, the console offers the actions."""

    ACCEPTED = "accepted"
    RECYCLE = "recycle"
    JUNK = "junk"
    UNREACHABLE = "unreachable"

    @property
    def closes_assignment(self) -> bool:
        """The lead leaves its rep: the slot is freed, the queue row closed, the clocks stopped, and
        marketing may contact the lead again. An accepted lead stays with its rep."""
        return self is not Disposition.ACCEPTED

    @property
    def returns_to_marketing(self) -> bool:
        """Back to marketing to be nurtured (recycled): it may qualify again, its engagement and
        handraise start over."""
        return self in (Disposition.RECYCLE, Disposition.UNREACHABLE)

    @property
    def needs_reason(self) -> bool:
        """Sales must say why (the review board reads it)."""
        return self in (Disposition.RECYCLE, Disposition.JUNK)

    @property
    def lead_status(self) -> LeadStatus:
        """The lead's status once the verdict is recorded."""
        if self is Disposition.ACCEPTED:
            return LeadStatus.ACCEPTED
        if self is Disposition.JUNK:
            return LeadStatus.JUNK
        return LeadStatus.RECYCLED


class SlaClockName(StrEnum):
    """The SLA's clocks, started on assignment: the first touch, then a status (a disposition)."""

    FIRST_TOUCH = "first_touch"
    DISPOSITION = "disposition"


# Every string of every payload is under the input policy (leadrelay.inputs): a record whose
# text the front doors would have refused (a NUL, an unpaired surrogate) is invalid, and is
# dead-lettered with the reason instead of failing half-way in a consumer's database.
LeadId = Annotated[Text, Field(max_length=64)]
Attributes = dict[Text, MultilineText]
# Event ids are the consumers' inbox keys: short, and under the same policy as the payload.
MAX_EVENT_ID = 64


def in_utc_range(value: datetime) -> datetime:
    """A time the consumers can store: with its offset applied it is still within years 1-9999
    (``0001-01-01T00:00:00+14:00`` is not). Otherwise the handler would fail on every attempt."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range: before 0001-01-01T00:00:00Z or after 9999-12-31T23:59:59Z") from None
    return value


# Every time of every payload: with a timezone, and within UTC's range.
AwareDatetime = Annotated[_AwareDatetime, AfterValidator(in_utc_range)]
# What the consumers' columns hold: a record past it is invalid (a dead letter with the reason) on
# every database, instead of a handler error on PostgreSQL only that would hold the group up.
RepRef = Annotated[Text, Field(min_length=1, max_length=100)]
TerritoryRef = Annotated[Text, Field(min_length=1, max_length=100)]
Cycle = Annotated[int, Field(ge=0, le=2**31 - 1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Model):
    email: Annotated[Text, Field(max_length=320)]
    first_name: Text | None = None
    last_name: Text | None = None
    company: Text | None = None
    job_title: Text | None = None
    phone: Text | None = Field(default=None, description="E.164")
    country: Text | None = Field(default=None, description="ISO 3166-1 alpha-2")
    company_size: int | None = Field(default=None, description="employees")
    industry: Text | None = None
    website: Text | None = Field(default=None, description="domain, e.g. example.com")
    email_type: Literal["business", "free", "disposable", "role"] | None = Field(
        default=None, description="what kind of address (leadrelay.emails): a company's, free mail, throwaway, shared"
    )
    company_domain: Text | None = Field(
        default=None, description="registrable domain of a business address, else of the website"
    )

    @property
    def email_domain(self) -> str:
        return self.email.rsplit("@", 1)[-1].lower()

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)


class ScoreReason(_Model):
    rule: Text
    category: Literal["fit", "engagement", "handraiser", "disqualifier"]
    points: int


class ActivitySummary(_Model):
    type: ActivityType
    occurred_at: AwareDatetime
    url: Text | None = None
    detail: Text | None = None


class Actor(_Model):
    """Who caused an event (the audit trail): a signed-in person, or a machine source by its API key."""

    kind: Literal["person", "source"]
    id: Text = Field(max_length=100, description="the person's id, or the source's id")
    role: Text = Field(
        max_length=20, description="rep, manager, ops, admin; or the source's role: tracking, crm, monitoring"
    )


class Event(_Model):
    """Base of every payload. ``TYPE`` is the versioned CloudEvents type, ``TOPIC`` where it goes."""

    TYPE: ClassVar[str]
    TOPIC: ClassVar[str]
    lead_id: LeadId


class ConsentItem(_Model):
    """One thing the person agreed to (or not): HubSpot's communications, or a form's checkbox."""

    text: Annotated[MultilineText, Field(max_length=5000)]
    given: bool
    subscription_type_id: Text | None = Field(default=None, description="HubSpot's subscriptionTypeId")


class ConsentEvidence(_Model):
    """What the person agreed to, when, where: kept with the lead as evidence."""

    basis: Literal["consent", "legitimate_interest"] = "consent"
    given: bool = Field(description="consent to process (or the legitimate interest stated)")
    text: Annotated[MultilineText, Field(max_length=5000)] = Field(description="the text shown")
    language: Text | None = None
    given_at: AwareDatetime
    source: Literal["form", "hubspot", "web-to-lead", "import"]
    form_id: Text
    page_url: Text | None = None
    communications: list[ConsentItem] = Field(default_factory=list, max_length=50)


class Visitor(_Model):
    """Someone known only by a tracking id: an anonymous id (analytics.js's ``anonymousId``, a
    HubSpot ``hutk``, a cookie) or a user id of the sender's own that is not an e-mail address."""

    kind: Literal["anonymous", "user"]
    id: Annotated[Text, Field(min_length=1, max_length=200)]

    @property
    def key(self) -> str:
        """Scoring's key of the visitor: ``anonymous:<id>`` or ``user:<id>``."""
        return f"{self.kind}:{self.id}"


MAX_VISITORS = 10


class FormSubmitted(Event):
    TYPE: ClassVar[str] = "leadrelay.intake.form_submitted.v1"
    TOPIC: ClassVar[str] = LEADS_INTAKE
    form_id: Text
    submitted_at: AwareDatetime
    contact: Contact
    custom: Attributes = Field(default_factory=dict)
    page_url: Text | None = None
    consent: ConsentEvidence | None = Field(default=None, description="the consent given with this submission")
    visitors: list[Visitor] = Field(
        default_factory=list,
        max_length=MAX_VISITORS,
        description="the visitor ids the form carried (anonymous_id, hutk...): their history joins the lead",
    )


class ActivityRecorded(Event):
    TYPE: ClassVar[str] = "leadrelay.intake.activity_recorded.v1"
    TOPIC: ClassVar[str] = LEADS_INTAKE
    email: Text | None = None
    activity: ActivityType
    occurred_at: AwareDatetime
    url: Text | None = None
    properties: dict[Text, Text] = Field(default_factory=dict)
    actor: Actor | None = Field(default=None, description="who posted it (absent in events from before sign-in)")


class VisitorActivityRecorded(Event):
    """A behaviour event of a visitor not known by e-mail (yet). Keyed by the visitor, so a
    visitor's events stay in order; scoring keeps them for the visitor, or credits them to the
    lead the visitor was joined to."""

    TYPE: ClassVar[str] = "leadrelay.intake.visitor_activity_recorded.v1"
    TOPIC: ClassVar[str] = LEADS_INTAKE
    lead_id: LeadId = Field(
        description="the visitor's key on the bus (UUIDv5 of the visitor in intake's namespace), not a lead's id"
    )
    visitor: Visitor
    activity: ActivityType
    occurred_at: AwareDatetime
    url: Text | None = None
    properties: dict[Text, Text] = Field(default_factory=dict)
    actor: Actor | None = None


class LeadIdentified(Event):
    """The tracking API's ``identify`` (or an ``alias`` or ``group``) of a lead known by e-mail:
    its traits update the profile, and each visitor it names is joined to the lead."""

    TYPE: ClassVar[str] = "leadrelay.intake.lead_identified.v1"
    TOPIC: ClassVar[str] = LEADS_INTAKE
    contact: Contact
    custom: Attributes = Field(default_factory=dict)
    visitors: list[Visitor] = Field(default_factory=list, max_length=MAX_VISITORS)
    identified_at: AwareDatetime
    actor: Actor | None = None


class LeadScored(Event):
    TYPE: ClassVar[str] = "leadrelay.scoring.lead_scored.v1"
    TOPIC: ClassVar[str] = LEADS_SCORED
    score: int
    fit: int
    engagement: int
    status: LeadStatus
    previous_status: LeadStatus | None
    reasons: list[ScoreReason]
    scored_at: AwareDatetime


class LeadQualified(Event):
    TYPE: ClassVar[str] = "leadrelay.scoring.lead_qualified.v1"
    TOPIC: ClassVar[str] = LEADS_SCORED
    qualification: Qualification
    cycle: Cycle = Field(description="1 for the first handoff, +1 each time a recycled lead qualifies again")
    score: int
    reasons: list[ScoreReason]
    contact: Contact
    custom: Attributes = Field(default_factory=dict)
    activities: list[ActivitySummary]
    qualified_at: AwareDatetime
    consent: list[ConsentEvidence] = Field(default_factory=list, description="the consent the lead gave, oldest first")


class Handoff(_Model):
    """Everything the rep needs: who, why marketing thinks the lead is ready, and what it did."""

    contact: Contact
    qualification: Qualification
    score: int
    reasons: list[ScoreReason]
    activities: list[ActivitySummary]
    custom: Attributes = Field(default_factory=dict)
    account: Text | None = Field(default=None, description="the named account the lead belongs to, if any")
    matched_by: Literal["account", "territory", "fallback", "overflow"]
    consent: list[ConsentEvidence] = Field(default_factory=list, description="the consent the lead gave, oldest first")


class LeadAssigned(Event):
    TYPE: ClassVar[str] = "leadrelay.routing.lead_assigned.v1"
    TOPIC: ClassVar[str] = LEADS_ASSIGNED
    cycle: Cycle
    rep_id: RepRef
    territory: TerritoryRef
    assigned_at: AwareDatetime
    handoff: Handoff


class TouchLogged(Event):
    TYPE: ClassVar[str] = "leadrelay.feedback.touch_logged.v1"
    TOPIC: ClassVar[str] = LEADS_FEEDBACK
    rep_id: RepRef = Field(description="the rep the touch is credited to")
    channel: Channel
    note: MultilineText | None = None
    touched_at: AwareDatetime
    actor: Actor | None = Field(
        default=None, description="who logged it: the rep, or a manager, ops or the CRM for the rep"
    )


class DispositionRecorded(Event):
    TYPE: ClassVar[str] = "leadrelay.feedback.disposition_recorded.v1"
    TOPIC: ClassVar[str] = LEADS_FEEDBACK
    rep_id: RepRef = Field(description="the rep the disposition is credited to")
    disposition: Disposition
    reason: MultilineText | None = None
    recorded_at: AwareDatetime
    actor: Actor | None = Field(
        default=None, description="who recorded it: the rep, or a manager, ops or the CRM for the rep"
    )


class SlaBreached(Event):
    TYPE: ClassVar[str] = "leadrelay.sla.deadline_breached.v1"
    TOPIC: ClassVar[str] = SLA_ALERTS
    clock: Annotated[Text, Field(max_length=40)]
    cycle: Cycle
    rep_id: RepRef
    territory: TerritoryRef
    due_at: AwareDatetime
    breached_at: AwareDatetime


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        FormSubmitted,
        ActivityRecorded,
        VisitorActivityRecorded,
        LeadIdentified,
        LeadScored,
        LeadQualified,
        LeadAssigned,
        TouchLogged,
        DispositionRecorded,
        SlaBreached,
    )
}


# ---------------------------------------------------------------- envelope


class DecodeError(ValueError):
    """A record that can never be processed (poison): it goes to the dead-letter topic."""


@dataclass(frozen=True, slots=True)
class Record:
    """One message as it travels on a bus: what Kafka stores, and what the embedded bus mimics."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int = -1
    offset: int = -1

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", errors="replace")
        return None


def encode_headers(headers: tuple[tuple[str, bytes], ...]) -> str:
    """A record's headers as stored text (the outbox, the embedded log): JSON pairs of the
    name and the base64 of the value, since header values are bytes and need not be UTF-8."""
    return json.dumps([[k, base64.b64encode(v).decode()] for k, v in headers])


def decode_headers(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, base64.b64decode(v)) for k, v in json.loads(text))


@dataclass(frozen=True, slots=True)
class Envelope:
    """A CloudEvents 1.0 event: attributes plus a typed payload."""

    id: str
    source: str
    time: datetime
    data: Event
    type: str = field(default="")

    def __post_init__(self) -> None:
        if not self.type:
            object.__setattr__(self, "type", self.data.TYPE)

    @property
    def subject(self) -> str:
        return self.data.lead_id

    @property
    def topic(self) -> str:
        return self.data.TOPIC

    @classmethod
    def new(cls, data: Event, source: str, time: datetime, event_id: str | None = None) -> Envelope:
        return cls(id=event_id or str(uuid.uuid4()), source=source, time=time, data=data)

    def to_record(self) -> Record:
        return Record(
            topic=self.topic,
            key=self.subject.encode(),
            value=self.data.model_dump_json().encode(),
            headers=(
                ("ce_specversion", SPECVERSION.encode()),
                ("ce_id", self.id.encode()),
                ("ce_source", self.source.encode()),
                ("ce_type", self.type.encode()),
                ("ce_time", self.time.isoformat().encode()),
                ("ce_subject", self.subject.encode()),
                ("content-type", CONTENT_TYPE.encode()),
            ),
        )

    @classmethod
    def from_record(cls, record: Record) -> Envelope:
        """Decode a record; raises :class:`DecodeError` for anything that can never be processed."""
        attrs = {k: record.header(f"ce_{k}") for k in ("specversion", "id", "source", "type", "time")}
        missing = [k for k, v in attrs.items() if not v]
        if missing:
            raise DecodeError(f"missing CloudEvents header(s): {', '.join('ce_' + m for m in missing)}")
        event_id = attrs["id"] or ""
        try:
            valid_id = len(event_id) <= MAX_EVENT_ID and clean_text(event_id) == event_id
        except InvalidText:
            valid_id = False
        if not valid_id:
            raise DecodeError(f"bad ce_id {event_id[:100]!r}: at most {MAX_EVENT_ID} characters of plain text")
        if attrs["specversion"] != SPECVERSION:
            raise DecodeError(f"unsupported ce_specversion {attrs['specversion']!r}")
        model = EVENT_TYPES.get(attrs["type"] or "")
        if model is None:
            raise DecodeError(f"unknown event type {attrs['type']!r}")
        try:
            time = datetime.fromisoformat(attrs["time"] or "")
        except ValueError as exc:
            raise DecodeError(f"bad ce_time: {exc}") from exc
        if time.tzinfo is None:
            raise DecodeError("ce_time has no timezone")
        try:
            in_utc_range(time)
        except ValueError as exc:
            raise DecodeError(f"bad ce_time: {exc}") from exc
        try:
            data = model.model_validate_json(record.value)
        except ValidationError as exc:
            raise DecodeError(f"invalid {model.TYPE} payload: {exc.errors(include_url=False)}") from exc
        return cls(id=event_id, source=attrs["source"] or "", time=time, data=data, type=model.TYPE)


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every payload type, keyed by event type (kept in ``leadrelay/schemas``)."""
    out: dict[str, dict[str, Any]] = {}
    for type_, model in EVENT_TYPES.items():
        schema = model.model_json_schema()
        schema["$id"] = f"urn:{type_}"
        schema["x-topic"] = model.TOPIC
        out[type_] = schema
    return out
