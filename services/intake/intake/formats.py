"""The shapes other tools post forms in: HubSpot's Forms API v3 and Salesforce Web-to-Lead.

Both end in the same use case as ``POST /v1/forms/{form_id}/submissions``
(:meth:`intake.service.Intake.form_submission`, then ``accept``), behind the same
screening (:class:`intake.screening.Screening`: rate limits, honeypot, captcha).

- **HubSpot** ``POST /submissions/v3/integration/submit/{portalId}/{formGuid}``: ``fields[]``
  (``objectTypeId``, ``name``, ``value``), ``context`` (``hutk``, ``pageUri``, ``pageName``,
  ``ipAddress``) and ``legalConsentOptions``. ``{portalId, formGuid}`` is a form's
  ``hubspot`` address in the rules. 200 with ``{"inlineMessage"}`` or ``{"redirectUri"}``;
  errors in HubSpot's shape (``status``, ``message``, ``correlationId``, ``errors[]`` of
  ``message`` and ``errorType``), 400 for bad input. The HubSpot user token (``hutk``) is
  passed on as the field ``hutk``: the visitor's anonymous id.
- **Web-to-Lead** ``POST /servlet/servlet.WebToLead`` (urlencoded): ``oid`` names a
  ``web_to_lead`` source of the rules; Salesforce's standard field names, and its ``00N...``
  custom field ids mapped to names. Accepted: 303 to ``retURL`` (which must be on the
  source's ``return_hosts``: no open redirect), or 202 without one. Unlike Salesforce,
  which answers 200 whatever happened, bad input is a 422 naming the fields, before
  anything is accepted: a redirect to the thank-you page would tell the person their
  request arrived when it was lost.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from intake.protection import TooManyRequests
from intake.service import Invalid, NotStored, UnknownForm, unavailable
from intake.website import PAGE_HEADERS, answer_page, language
from leadrelay.auth import PUBLIC
from leadrelay.contract import RETRY_AFTER, inline_schema, request_body
from leadrelay.events import ConsentEvidence, ConsentItem, Envelope
from leadrelay.http import field_errors
from leadrelay.inputs import MultilineText, Text, parse_urlencoded
from leadrelay.rules import Form

if TYPE_CHECKING:
    from intake.resources import IntakeContext


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


def _hubspot_error(
    status: int, message: str, errors: list[tuple[str, str]], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = HubSpotErrors(
        message=message,
        correlationId=str(uuid.uuid4()),
        errors=[HubSpotError(message=m, errorType=t) for m, t in errors],
    )
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _hubspot_field_errors(errors: list[dict[str, Any]], form: Form) -> JSONResponse:
    consent_field = form.consent.field if form.consent else None
    out = []
    for e in errors:
        name = str(e["loc"][-1]) if e.get("loc") else "body"
        kind = "REQUIRED_FIELD" if e.get("type") == "missing" else _ERROR_TYPES.get(name, "INVALID_FIELD_VALUE")
        if name == consent_field:
            kind = "MISSING_PROCESSING_CONSENT"
        out.append((f"Error in 'fields.{name}'. {e['msg']}", kind))
    return _hubspot_error(400, "The request is not valid", out)


def _hubspot_fields(sub: HubSpotSubmission) -> dict[str, Any]:
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


def _hubspot_consent(sub: HubSpotSubmission, form_id: str, now: Any) -> ConsentEvidence | None:
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


def _return_url(raw: str | None, hosts: list[str]) -> tuple[str | None, str | None]:
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


def build_router(ctx: IntakeContext) -> APIRouter:
    router = APIRouter(tags=["intake"])
    intake = ctx.resources.intake
    screening = ctx.resources.screening

    async def publish(build: Callable[[], Envelope]) -> str:
        """Accept the event; the lead id. Raises Invalid, UnknownForm, Unavailable."""
        envelope = build()
        try:
            accepted = await intake.accept(envelope)
        except NotStored as exc:
            raise unavailable(exc) from exc
        return accepted.lead_id

    hubspot_errors = {
        "400": {"description": "Bad input, in HubSpot's error shape.", "model": HubSpotErrors},
        "404": {"description": "No form has this portal id and form GUID.", "model": HubSpotErrors},
        "429": {"description": "Too many posts.", "model": HubSpotErrors, "headers": RETRY_AFTER},
    }

    @router.post(
        "/submissions/v3/integration/submit/{portalId}/{formGuid}",
        response_model=HubSpotAnswer,
        response_model_exclude_none=True,
        dependencies=[PUBLIC],
        responses=hubspot_errors,  # type: ignore[arg-type]
        openapi_extra=request_body(
            {"application/json": inline_schema(HubSpotSubmission)},
            "HubSpot's Forms API v3 submission.",
        ),
        summary="A form submission in HubSpot's Forms API v3 shape",
    )
    async def hubspot_submit(
        portalId: Annotated[str, Path(max_length=20)],  # noqa: N803 (HubSpot's names)
        formGuid: Annotated[str, Path(max_length=64)],  # noqa: N803
        request: Request,
    ) -> Any:
        form = ctx.rules.hubspot_form(portalId, formGuid)
        if form is None:
            return _hubspot_error(
                404, f"No form {formGuid} in portal {portalId}", [(f"form {formGuid} not found", "FORM_NOT_FOUND")]
            )
        try:
            screening.limit(request, f"form:{form.id}")
        except TooManyRequests as exc:
            return _hubspot_error(429, str(exc.detail), [(str(exc.detail), "RATE_LIMITED")], exc.headers)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/json", ""):
            raise HTTPException(415, f"expected application/json, got {ctype}")
        try:
            # Python's parser, as intake's other routes: an escaped lone surrogate is valid JSON,
            # and the input policy then refuses it naming the field.
            parsed = json.loads(await request.body())
        except ValueError as exc:
            return _hubspot_error(400, "The request is not valid", [(f"Error in 'body'. {exc}", "INVALID_JSON")])
        try:
            sub = HubSpotSubmission.model_validate(parsed)
        except ValidationError as exc:
            return _hubspot_error(
                400,
                "The request is not valid",
                [
                    (
                        f"Error in '{'.'.join(str(p) for p in e['loc']) or 'body'}'. {e['msg']}",
                        "INVALID_JSON" if e["type"] == "json_invalid" else "INVALID_FIELD_VALUE",
                    )
                    for e in exc.errors(include_url=False)
                ],
            )
        fields = _hubspot_fields(sub)
        answer = HubSpotAnswer(inlineMessage=form.hubspot.inline_message if form.hubspot else None)
        if form.hubspot and form.hubspot.redirect_uri:
            answer = HubSpotAnswer(redirectUri=form.hubspot.redirect_uri)
        try:
            if not await screening.passes(form, fields, request, sub.context.ipAddress):
                return answer
            consent = _hubspot_consent(sub, form.id, ctx.clock.now())
            await publish(lambda: intake.form_submission(form.id, fields, None, via="hubspot", consent=consent))
        except Invalid as exc:
            return _hubspot_field_errors(exc.errors, form)
        except HTTPException as exc:  # the captcha's 422
            if exc.status_code == 422 and isinstance(exc.detail, list):
                return _hubspot_field_errors(exc.detail, form)
            raise
        return answer

    @router.post(
        "/servlet/servlet.WebToLead",
        status_code=202,
        dependencies=[PUBLIC],
        responses={
            202: {"description": "Accepted; no retURL was given.", "model": WebToLeadAccepted},
            303: {
                "description": "Accepted: to the source's retURL.",
                "headers": {"Location": {"schema": {"type": "string"}}},
            },
            404: {"description": "No web_to_lead source has this oid."},
            422: {
                "description": (
                    "Field errors, each naming its field; nothing is kept. A browser's post (Accept: text/html)"
                    " gets them as intake's page (text/html) in its language."
                ),
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/FieldErrors"}},
                    "text/html": {"schema": {"type": "string"}},
                },
            },
            429: {"description": "Too many posts.", "headers": RETRY_AFTER},
        },
        openapi_extra=request_body(
            {"application/x-www-form-urlencoded": WEB_TO_LEAD_BODY, "multipart/form-data": WEB_TO_LEAD_BODY},
            "A Salesforce Web-to-Lead form post.",
        ),
        summary="A form submission in Salesforce's Web-to-Lead shape",
    )
    async def web_to_lead(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            raise HTTPException(415, f"expected a form post (application/x-www-form-urlencoded), got {ctype}")
        # Salesforce's Web-to-Lead forms name their charset in an `encoding` field.
        raw = await read_form(request, ctx.settings.max_form_fields, ("_charset_", "encoding"))
        oid = raw.get("oid") or raw.get("orgid")
        if not oid:
            raise field_errors([{"loc": ["body", "oid"], "msg": "field required", "type": "missing"}])
        source = ctx.rules.web_to_lead_source(oid.strip())
        if source is None:
            raise HTTPException(404, f"no web_to_lead source has oid {oid.strip()!r}")
        screening.limit(request, f"web-to-lead:{source.oid}")
        form = ctx.rules.form(source.form)
        if form is None:  # checked when the rules are loaded
            raise HTTPException(404, str(UnknownForm(source.form, [f.id for f in ctx.rules.forms])))

        def refused(errors: list[dict[str, Any]]) -> Response:
            """422: for a browser (Accept: text/html) as intake's page saying what to correct, in its
            language, linking back to the page when it is on the source's return_hosts."""
            if "text/html" not in request.headers.get("accept", "").lower():
                raise field_errors(errors)
            back, _ = _return_url(request.headers.get("referer"), source.return_hosts)
            lang = language(request.headers.get("accept-language", ""))
            return HTMLResponse(answer_page(form, lang, errors, back), status_code=422, headers=PAGE_HEADERS)

        ret_key = next((k for k in raw if k.lower() == "returl"), None)
        ret_url, problem = _return_url(raw.get(ret_key) if ret_key else None, source.return_hosts)
        if problem:
            return refused([{"loc": ["body", "retURL"], "msg": problem, "type": "value_error"}])
        fields: dict[str, Any] = {}
        for name, value in raw.items():
            if name.lower() in WEB_TO_LEAD_META:
                continue
            fields[source.fields.get(name, name)] = value
        try:
            human = await screening.passes(form, fields, request)
        except HTTPException as exc:  # a missing or refused captcha
            if exc.status_code != 422 or not isinstance(exc.detail, list):
                raise
            return refused(exc.detail)
        if human:
            try:
                await publish(lambda: intake.form_submission(form.id, fields, None, via="web-to-lead"))
            except Invalid as exc:
                return refused(exc.errors)
        if ret_url:
            return RedirectResponse(ret_url, status_code=303)
        return JSONResponse(WebToLeadAccepted().model_dump(), status_code=202)

    return router


async def read_form(
    request: Request, max_fields: int, charset_fields: tuple[str, ...] = ("_charset_",)
) -> dict[str, str]:
    """A form post's text fields (at most ``max_fields``), or a 422 naming what is wrong. An
    urlencoded body is decoded strictly (:func:`leadrelay.inputs.parse_urlencoded`: bytes that are
    not text are refused, not replaced); multipart by Starlette (its file parts are not fields)."""
    ctype, _, params = request.headers.get("content-type", "").partition(";")
    if ctype.strip().lower() == "application/x-www-form-urlencoded":
        charset = None
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset":
                charset = value.strip().strip('"')
        fields, errors = parse_urlencoded(await request.body(), max_fields, charset, charset_fields)
        if errors:
            raise field_errors(errors)
        return fields
    try:
        posted = await request.form(max_fields=max_fields)
    except StarletteHTTPException as exc:
        # The form parser's refusals (too many fields or files, a part too large) are the body's fault.
        raise field_errors([{"loc": ["body"], "msg": str(exc.detail), "type": "value_error"}]) from None
    return {k: v for k, v in posted.items() if isinstance(v, str)}
