"""The bodies intake reads from the raw request, described for the OpenAPI document.

A form submission arrives as a JSON object of fields or as an HTML form
(urlencoded or multipart); a behaviour event as JSON. Both routes read the
request themselves (to take every shape a form builder sends and report every
field error at once), so FastAPI cannot infer their bodies: these schemas say
what :func:`intake.domain.normalise_submission` and ``ActivityIn`` accept.
Three values have rules JSON Schema cannot state, named as formats: ``phone``
(a valid number: E.164, or national together with a country), ``country`` (an
ISO 3166 code, or a name in English, Swedish, German, Dutch or Chinese) and ``web-address`` (a domain or URL).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from intake.domain import _SIZE, ALIASES, CANONICAL, MAX_CUSTOM, MAX_VALUE
from leadrelay.contract import inline_schema, request_body
from leadrelay.rules import Tracking

# email-validator refuses the special-use domains (RFC 6761): no lead can have an address there.
SPECIAL_USE_DOMAIN = r"(?i)[@.](arpa|invalid|local|localhost|onion|test)\.?$"
EMAIL: dict[str, Any] = {
    "type": "string",
    "format": "email",
    "maxLength": 254,
    "not": {"pattern": SPECIAL_USE_DOMAIN},
}
# The input policy refuses NUL in any text (leadrelay.inputs).
NO_NUL = "^[^\\u0000]*$"
# An empty field (as many form builders send one) is ignored; control characters are removed
# first (the input policy), so a field of only those is empty too.
_BLANK: dict[str, Any] = {"type": "string", "pattern": r"^[\s\u0001-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"}
_NULL: dict[str, Any] = {"type": "null"}

_DESCRIPTIONS = {
    "email": "the lead's address (required); deliverability is not checked",
    "first_name": "",
    "last_name": "",
    "company": "",
    "job_title": "",
    "phone": "E.164 (+46701234567), or national (070-123 45 67) when a country is given; stored in E.164",
    "country": "ISO 3166 code, or a name in English, Swedish, German, Dutch or Chinese; stored as the alpha-2 code",
    "company_size": "employees: 250, 51-200 or 1000+ (the first number counts)",
    "industry": "",
    "website": "a domain or web address; stored as the domain",
}


def _field(name: str, form: bool) -> dict[str, Any]:
    """The schema of one canonical field, as JSON (``form=False``) or as a posted HTML form field."""
    text: dict[str, Any] = {"type": "string", "maxLength": MAX_VALUE, "pattern": NO_NUL}
    blank = [_BLANK] if form else [_BLANK, _NULL]
    if name == "email":
        schema: dict[str, Any] = dict(EMAIL)
    elif name == "phone":
        schema = {"anyOf": [{"type": "string", "format": "phone"}, *blank]}
    elif name == "country":
        schema = {"anyOf": [{"type": "string", "format": "country"}, *blank]}
    elif name == "website":
        schema = {"anyOf": [{"type": "string", "format": "web-address"}, *blank]}
    elif name == "company_size":
        size = {**text, "pattern": _SIZE.pattern}
        numbers = [] if form else [{"type": "integer", "minimum": 0}, _NULL]
        schema = {"anyOf": [size, _BLANK, *numbers]}
    else:
        schema = text if form else {"type": ["string", "number", "null"], "maxLength": MAX_VALUE, "pattern": NO_NUL}
    if _DESCRIPTIONS[name]:
        schema["description"] = _DESCRIPTIONS[name]
    return schema


def _fields(form: bool) -> dict[str, Any]:
    other: dict[str, Any] = (
        {"type": "string", "maxLength": MAX_VALUE, "pattern": NO_NUL}
        if form
        else {"type": ["string", "number", "null"], "maxLength": MAX_VALUE, "pattern": NO_NUL}
    )
    properties = {name: _field(name, form) for name in CANONICAL}
    properties["page_url"] = {**other, "description": "the page the form is on (also: page, referrer_page)"}
    for name in Tracking().visitor_fields:  # the example's; a rules file may name others
        visitor: dict[str, Any] = {"type": "string", "maxLength": 200, "pattern": NO_NUL}
        properties[name] = {
            "anyOf": [visitor, _NULL] if not form else [visitor],
            "description": "the visitor's anonymous id (tracking.visitor_fields): its page views join the lead",
        }
    aliases = ", ".join(f"{a} ({c})" for a, c in sorted(ALIASES.items()))
    return {
        "type": "object",
        "title": "FormFields",
        "description": (
            "The form's fields. Names are matched case-insensitively, with spaces, dashes and dots read as"
            f" underscores; these aliases are understood: {aliases}. Any other field is kept as a custom attribute"
            f" (at most {MAX_CUSTOM}, {MAX_VALUE} characters each); empty fields are ignored."
        ),
        "required": ["email"],
        "properties": properties,
        "propertyNames": {"pattern": NO_NUL},  # the input policy: no NUL in a name or a value
        "additionalProperties": other,
    }


SUBMISSION_BODY = request_body(
    {
        "application/json": _fields(form=False),
        "application/x-www-form-urlencoded": _fields(form=True),
        "multipart/form-data": _fields(form=True),
    },
    "A JSON object of fields, or the form as an HTML form posts it. A form's rules may require more fields"
    " and a consent box (`fields[].required`, `consent.required` in GET /v1/forms): missing ones are 422.",
)


class Accepted(BaseModel):
    """What a 202 answers: the event is stored."""

    lead_id: str
    event_id: str


def event_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of ``POST /v1/events``: ``model``'s schema with the rules its validators add."""
    schema = inline_schema(model)
    props = schema["properties"]
    props["email"] = {"anyOf": [EMAIL, _NULL], "description": "the lead's address (or give lead_id)"}
    props["occurred_at"]["description"] = "when it happened, with a timezone, at most 5 minutes ahead of the server"
    # Who: the email or the lead id (the lead id is the one derived from the email, so not both).
    schema["anyOf"] = [
        {"required": ["email"], "properties": {"email": {"type": "string"}}},
        {"required": ["lead_id"], "properties": {"lead_id": {"type": "string"}}},
    ]
    schema["not"] = {
        "required": ["email", "lead_id"],
        "properties": {"email": {"type": "string"}, "lead_id": {"type": "string"}},
    }
    return request_body({"application/json": schema}, "A behaviour event of a lead known by email or lead id.")
