"""The shapes other tools post forms in, and how they map to a form submission: HubSpot's Forms API
v3 (its body, its error shape, its property names, its consent options) and Salesforce
Web-to-Lead (its meta fields, its ``retURL``, held to the source's ``return_hosts``). Their routes
are in ``intake.connectors.api``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from leadrelay.events import ConsentEvidence, ConsentItem
from leadrelay.inputs import MultilineText, Text
from leadrelay.rules import Form

# ---------------------------------------------------------------- HubSpot Forms API v3


class HubSpotField(BaseModel):
    model_config = ConfigDict(extra="ignore")

    objectTypeId: Text = Field(default="0-1", max_length=20, description="0-1 contact, 0-2 company")
    name: Annotated[Text, Field(min_length=1, max_length=100)]
    value: Annotated[MultilineText, Field(max_length=1000)] | None = None


class HubSpotContext(BaseModel):
    model_config = ConfigDict(extra="ignore")

    hutk: Text | None = Field(default=None, max_length=200, description="the HubSpot visitor cookie: anonymous id")
    pageUri: Text | None = Field(default=None, max_length=2000)
    pageName: Text | None = Field(default=None, max_length=500)
    ipAddress: Text | None = Field(default=None, max_length=64)


class HubSpotCommunication(BaseModel):
    model_config = ConfigDict(extra="ignore")

    value: bool
    subscriptionTypeId: int | Text | None = None
    text: Annotated[MultilineText, Field(max_length=5000)]


class HubSpotConsent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    consentToProcess: bool
    text: Annotated[MultilineText, Field(max_length=5000)]
    communications: list[HubSpotCommunication] = Field(default_factory=list, max_length=50)


class HubSpotLegitimateInterest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    value: bool
    subscriptionTypeId: int | Text | None = None
    legalBasis: Text | None = Field(default=None, max_length=100)
    text: Annotated[MultilineText, Field(max_length=5000)]


class HubSpotLegalConsent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    consent: HubSpotConsent | None = None
    legitimateInterest: HubSpotLegitimateInterest | None = None


class HubSpotSubmission(BaseModel):
    """HubSpot's Forms API v3 submission body."""

    model_config = ConfigDict(extra="ignore")

    fields: list[HubSpotField] = Field(min_length=1, max_length=200)
    context: HubSpotContext = Field(default_factory=HubSpotContext)
    legalConsentOptions: HubSpotLegalConsent | None = None
    submittedAt: Text | int | None = Field(default=None, description="ignored: intake's clock is the time")


class HubSpotError(BaseModel):
    message: str
    errorType: str


class HubSpotErrors(BaseModel):
    """HubSpot's error body."""

    status: Literal["error"] = "error"
    message: str
    correlationId: str
    errors: list[HubSpotError] = Field(default_factory=list)


class HubSpotAnswer(BaseModel):
    inlineMessage: str | None = None
    redirectUri: str | None = None


# HubSpot's property names where they differ from intake's (intake.domain.ALIASES does the rest).
HUBSPOT_CONTACT = {"numemployees": "company_size", "mobilephone": "phone", "hs_language": "language"}
HUBSPOT_COMPANY = {
    "name": "company",
    "domain": "website",
    "website": "website",
    "numberofemployees": "company_size",
    "industry": "industry",
    "country": "country",
}
_ERROR_TYPES = {"email": "INVALID_EMAIL", "phone": "INVALID_NUMBER", "company_size": "INVALID_NUMBER"}


def hubspot_error(
    status: int, message: str, errors: list[tuple[str, str]], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = HubSpotErrors(
        message=message,
        correlationId=str(uuid.uuid4()),
        errors=[HubSpotError(message=m, errorType=t) for m, t in errors],
    )
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def hubspot_field_errors(errors: list[dict[str, Any]], form: Form) -> JSONResponse:
    consent_field = form.consent.field if form.consent else None
    out = []
    for e in errors:
        name = str(e["loc"][-1]) if e.get("loc") else "body"
        kind = "REQUIRED_FIELD" if e.get("type") == "missing" else _ERROR_TYPES.get(name, "INVALID_FIELD_VALUE")
        if name == consent_field:
            kind = "MISSING_PROCESSING_CONSENT"
        out.append((f"Error in 'fields.{name}'. {e['msg']}", kind))
    return hubspot_error(400, "The request is not valid", out)


def hubspot_fields(sub: HubSpotSubmission) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for f in sub.fields:
        name = f.name
        if f.objectTypeId == "0-2":
            name = HUBSPOT_COMPANY.get(name.lower(), f"company_{name}")
        else:
            name = HUBSPOT_CONTACT.get(name.lower(), name)
        if f.value is not None:
            fields[name] = f.value
    if sub.context.pageUri:
        fields.setdefault("page_url", sub.context.pageUri)
    if sub.context.hutk:
        # The visitor's anonymous id: the identity join reads it from the submission's fields.
        fields["hutk"] = sub.context.hutk
    return fields


def hubspot_consent(sub: HubSpotSubmission, form_id: str, now: Any) -> ConsentEvidence | None:
    legal = sub.legalConsentOptions
    if legal is None:
        return None
    page = sub.context.pageUri
    if legal.consent is not None:
        return ConsentEvidence(
            given=legal.consent.consentToProcess,
            text=legal.consent.text,
            given_at=now,
            source="hubspot",
            form_id=form_id,
            page_url=page,
            communications=[
                ConsentItem(
                    text=c.text,
                    given=c.value,
                    subscription_type_id=None if c.subscriptionTypeId is None else str(c.subscriptionTypeId),
                )
                for c in legal.consent.communications
            ],
        )
    if legal.legitimateInterest is not None:
        li = legal.legitimateInterest
        return ConsentEvidence(
            basis="legitimate_interest",
            given=li.value,
            text=li.text,
            given_at=now,
            source="hubspot",
            form_id=form_id,
            page_url=page,
        )
    return None


# ---------------------------------------------------------------- Salesforce Web-to-Lead

# Salesforce's own fields that are not lead data.
WEB_TO_LEAD_META = frozenset(
    {"oid", "orgid", "returl", "debug", "debugemail", "encoding", "submit", "recordtype", "captcha_settings"}
)


def return_url(raw: str | None, hosts: list[str]) -> tuple[str | None, str | None]:
    """The retURL to redirect to, or an error: http(s) only, host on the source's list."""
    if raw is None or not raw.strip():
        return None, None
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None, "retURL must be an absolute http(s) URL"
    if parts.hostname.lower() not in {h.lower() for h in hosts}:
        return None, f"retURL's host {parts.hostname} is not among this source's return_hosts"
    return value, None


class WebToLeadAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"


_TEXT = {"type": "string", "maxLength": 1000, "pattern": "^[^\\u0000]*$"}
WEB_TO_LEAD_BODY: dict[str, Any] = {
    "type": "object",
    "title": "WebToLeadFields",
    "description": (
        "Salesforce Web-to-Lead fields: oid (a web_to_lead source of the rules), retURL (on the source's"
        " return_hosts), the standard lead fields (first_name, last_name, email, company, title, phone,"
        " mobile, city, state, zip, country, lead_source, description, industry, employees, URL, ...) and"
        " custom fields by their 00N... id (mapped to names in the rules)."
    ),
    "required": ["oid", "email"],
    "properties": {
        "oid": {"type": "string", "pattern": "^[A-Za-z0-9]{1,18}$"},
        "retURL": {"type": "string", "maxLength": 2000},
        "email": {"type": "string", "format": "email", "maxLength": 254},
    },
    "additionalProperties": _TEXT,
}
