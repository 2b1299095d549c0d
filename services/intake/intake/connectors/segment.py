"""The Segment/RudderStack tracking spec, read: what one message of ``/v1/batch`` (or of
``/v1/track``, ``/v1/identify``...) becomes.

Pure: no I/O, the time passed in. A message names its person by ``userId`` (an e-mail address
there is the lead) or ``traits.email`` / ``context.traits.email``, else by ``anonymousId`` or a
``userId`` of the sender's own (a visitor). Every problem is a field error located under the
message (``["body", "batch", 3, "userId"]``), all of them at once.

- ``identify`` with an e-mail: a ``LeadIdentified`` (the traits as contact fields; the
  anonymous id and a non-e-mail user id are joined to the lead). Without an e-mail there is no
  lead to join: ignored.
- ``track``: the event name mapped to an activity by the rules (``tracking.events``; the rest
  as ``tracking.unmapped`` says, ignored by default); ``page`` and ``screen``: ``page_viewed``.
  Of a lead known by e-mail: ``ActivityRecorded``; of a visitor: ``VisitorActivityRecorded``.
- ``group`` of a lead known by e-mail: its traits (name, industry, employees, website) become
  the lead's company fields (a ``LeadIdentified``); of a visitor: ignored.
- ``alias``: when ``userId`` or ``previousId`` is an e-mail, the other id is joined to that
  lead (as an anonymous and as a user id: the spec does not say which it is); else ignored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from email_validator import EmailNotValidError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from intake.domain import lead_id_for, normalise_email, normalise_submission
from leadrelay.events import (
    MAX_VISITORS,
    ActivityRecorded,
    ActivityType,
    Actor,
    AwareDatetime,
    Contact,
    Event,
    LeadIdentified,
    Visitor,
    VisitorActivityRecorded,
)
from leadrelay.inputs import InvalidText, Text, clean_text, displayable
from leadrelay.rules import Tracking

# Segment's documented limits: 32 KB per message, 500 KB per batch request.
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_PROPERTIES = 50
MAX_PROPERTY_NAME = 100
MAX_PROPERTY_VALUE = 1000
MessageType = Literal["identify", "track", "page", "screen", "group", "alias"]
# The short paths analytics.js posts to.
SHORT = {"b": "batch", "i": "identify", "t": "track", "p": "page", "g": "group", "a": "alias"}
Id = str | int  # analytics.js sends strings; some servers send numeric user ids


def _id(value: Id | None) -> str | None:
    if value is None:
        return None
    text = clean_text(str(value)).strip()
    if len(text) > 200:
        raise ValueError("longer than 200 characters")
    return text or None


class Message(BaseModel):
    """One message as the tracking spec defines it; fields Leadrelay does not use are ignored."""

    model_config = ConfigDict(extra="ignore")

    type: MessageType
    messageId: Text | None = Field(default=None, max_length=200)  # noqa: N815 - the spec's names
    anonymousId: Id | None = None  # noqa: N815
    userId: Id | None = None  # noqa: N815
    previousId: Id | None = None  # noqa: N815
    groupId: Id | None = None  # noqa: N815
    event: Text | None = Field(default=None, max_length=200)
    name: Text | None = Field(default=None, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    timestamp: AwareDatetime | None = None
    originalTimestamp: AwareDatetime | None = None  # noqa: N815
    sentAt: AwareDatetime | None = None  # noqa: N815

    @field_validator("anonymousId", "userId", "previousId", "groupId")
    @classmethod
    def _ids(cls, value: Id | None) -> str | None:
        if isinstance(value, bool):
            raise ValueError("expected a string")
        try:
            return _id(value)
        except InvalidText as exc:
            raise ValueError(str(exc)) from None


@dataclass
class Mapped:
    """What a message becomes: an event (None: nothing to record, ``ignored`` says why), or errors."""

    event: Event | None = None
    ignored: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


def visitor_key(visitor: Visitor, namespace: uuid.UUID) -> str:
    """The record key of a visitor's events: UUIDv5, so a visitor's events share a partition."""
    return str(uuid.uuid5(namespace, f"visitor:{visitor.key}"))


def occurred_at(message: Message, received_at: datetime) -> datetime:
    """When it happened. As Segment does, a client's clock is corrected by the difference between
    its ``sentAt`` and the time of receipt; never later than the receipt."""
    stamp = message.timestamp or message.originalTimestamp
    if stamp is None:
        return received_at
    if message.sentAt is not None:
        stamp = received_at - (message.sentAt - stamp)
    return min(stamp, received_at)


def _err(loc: list[str | int], msg: str, type_: str = "value_error") -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": type_}


def _email(value: Any) -> str | None:
    if not isinstance(value, str) or "@" not in value:
        return None
    try:
        return normalise_email(clean_text(value))
    except (EmailNotValidError, InvalidText):
        return None


def _text_at(data: dict[str, Any], *path: str) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _contact_fields(traits: dict[str, Any], group: bool) -> dict[str, Any]:
    """Traits as the form fields ``normalise_submission`` reads (it knows firstName, title...)."""
    fields: dict[str, Any] = {}
    for name, value in traits.items():
        if value is None or isinstance(value, str | int | float) and not isinstance(value, bool):
            fields[name] = value
    if group:  # a group's traits describe the company
        fields = {
            "company": traits.get("name"),
            "industry": traits.get("industry"),
            "employees": traits.get("employees"),
            "website": traits.get("website"),
        }
    company = traits.get("company")
    if isinstance(company, dict):  # the spec's company object
        fields.pop("company", None)
        for key, target in (("name", "company"), ("industry", "industry"), ("employee_count", "employees")):
            if isinstance(company.get(key), str | int):
                fields[target] = company[key]
    country = _text_at(traits, "address", "country")
    if isinstance(country, str):
        fields["country"] = country
    for key in ("address", "createdAt", "id", "email"):
        fields.pop(key, None)
    return fields


def _properties(props: dict[str, Any], loc: list[str | int]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The scalar properties as text (title, name, category...), under the input policy."""
    out: dict[str, str] = {}
    errors: list[dict[str, Any]] = []
    for name, value in props.items():
        if value is None or isinstance(value, dict | list):
            continue
        if len(out) >= MAX_PROPERTIES:
            break
        text = str(value).lower() if isinstance(value, bool) else str(value)
        try:
            key = clean_text(name)[:MAX_PROPERTY_NAME]
            out[key] = clean_text(text)[:MAX_PROPERTY_VALUE]
        except InvalidText as exc:
            errors.append(_err([*loc, "properties", displayable(name)], str(exc)))
    return out, errors


def _visitors(message: Message, email_user: bool) -> list[Visitor]:
    visitors = []
    if message.anonymousId:
        visitors.append(Visitor(kind="anonymous", id=message.anonymousId))
    if message.userId and not email_user:
        visitors.append(Visitor(kind="user", id=str(message.userId)))
    return visitors


def map_message(
    message: Message,
    loc: list[str | int],
    rules: Tracking,
    namespace: uuid.UUID,
    received_at: datetime,
    actor: Actor | None = None,
) -> Mapped:
    """One message as the event it records (see the module docstring)."""
    user_email = _email(message.userId)
    email = user_email or _email(message.traits.get("email")) or _email(_text_at(message.context, "traits", "email"))
    try:
        when = occurred_at(message, received_at)
    except OverflowError:
        return Mapped(errors=[_err([*loc, "sentAt"], "so far from timestamp that the corrected time is out of range")])
    if message.type == "alias":
        return _alias(message, loc, namespace, when, actor)
    if not email and not message.anonymousId and not message.userId:
        return Mapped(errors=[_err([*loc, "userId"], "give a userId or an anonymousId", "missing")])
    if message.type in ("identify", "group"):
        if not email:
            return Mapped(ignored=f"{message.type} without an e-mail address: no lead to join")
        return _identify(message, loc, email, user_email is not None, namespace, when, actor)
    activity: ActivityType | None
    if message.type == "track":
        if not message.event:
            return Mapped(errors=[_err([*loc, "event"], "a track call needs its event name", "missing")])
        mapped = rules.events.get(message.event, rules.unmapped)
        activity = None if mapped == "ignore" else ActivityType(mapped)
        if activity is None:
            return Mapped(ignored=f"track event {message.event!r} is not mapped to an activity (tracking.events)")
    else:  # page, screen
        activity = ActivityType.PAGE_VIEWED
    properties, errors = _properties(message.properties, loc)
    if errors:
        return Mapped(errors=errors)
    if message.name and "name" not in properties:
        properties["name"] = message.name
    url = message.properties.get("url") or _text_at(message.context, "page", "url")
    try:
        page = clean_text(url)[:2000] if isinstance(url, str) and url.strip() else None
    except InvalidText as exc:
        return Mapped(errors=[_err([*loc, "properties", "url"], str(exc))])
    if email:
        return Mapped(
            event=ActivityRecorded(
                lead_id=lead_id_for(email, namespace),
                email=email,
                activity=activity,
                occurred_at=when,
                url=page,
                properties=properties,
                actor=actor,
            )
        )
    visitor = _visitors(message, email_user=False)[0]  # the anonymous id if there is one
    return Mapped(
        event=VisitorActivityRecorded(
            lead_id=visitor_key(visitor, namespace),
            visitor=visitor,
            activity=activity,
            occurred_at=when,
            url=page,
            properties=properties,
            actor=actor,
        )
    )


def _identify(
    message: Message,
    loc: list[str | int],
    email: str,
    email_user: bool,
    namespace: uuid.UUID,
    when: datetime,
    actor: Actor | None,
) -> Mapped:
    group = message.type == "group"
    result = normalise_submission({**_contact_fields(message.traits, group), "email": email})
    if result.contact is None:
        errors = [_err([*loc, "traits", *[str(p) for p in e["loc"][1:]]], e["msg"], e["type"]) for e in result.errors]
        return Mapped(errors=errors)
    contact = result.contact
    return Mapped(
        event=LeadIdentified(
            lead_id=lead_id_for(email, namespace),
            contact=contact,
            custom={} if group else result.custom,
            visitors=[] if group else _visitors(message, email_user),
            identified_at=when,
            actor=actor,
        )
    )


def _alias(message: Message, loc: list[str | int], namespace: uuid.UUID, when: datetime, actor: Actor | None) -> Mapped:
    if not message.userId or not message.previousId:
        missing = "userId" if not message.userId else "previousId"
        return Mapped(errors=[_err([*loc, missing], "an alias needs userId and previousId", "missing")])
    email, other = _email(message.userId), str(message.previousId)
    if email is None:
        email, other = _email(message.previousId), str(message.userId)
    if email is None:
        return Mapped(ignored="alias of two ids neither of which is an e-mail address: no lead to join")
    visitors = [Visitor(kind="anonymous", id=other), Visitor(kind="user", id=other)]
    if message.anonymousId and message.anonymousId != other:
        visitors.append(Visitor(kind="anonymous", id=message.anonymousId))
    return Mapped(
        event=LeadIdentified(
            lead_id=lead_id_for(email, namespace),
            contact=Contact(email=email),
            visitors=visitors[:MAX_VISITORS],
            identified_at=when,
            actor=actor,
        )
    )


def parse_message(raw: Any, loc: list[str | int], implied: str | None) -> Message | list[dict[str, Any]]:
    """A message of the body (``implied``: the type its path gives), or its field errors."""
    if not isinstance(raw, dict):
        return [_err(loc, "expected a JSON object (a message)", "type_error")]
    data = raw if implied is None or "type" in raw else {**raw, "type": implied}
    if implied is not None and data.get("type") != implied:
        return [_err([*loc, "type"], f"this path takes {implied} messages, not {data.get('type')!r}")]
    try:
        return Message.model_validate(data)
    except ValidationError as exc:
        return [
            _err([*loc, *[p for p in e["loc"] if isinstance(p, str | int)]], e["msg"], e["type"])
            for e in exc.errors(include_url=False)
        ]
