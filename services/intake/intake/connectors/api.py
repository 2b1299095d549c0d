"""The shapes other tools post forms in: HubSpot's Forms API v3 and Salesforce Web-to-Lead.

Both end in the same use case as ``POST /v1/forms/{form_id}/submissions``
(:meth:`intake.service.Intake.form_submission`, then ``accept``), behind the same
screening (:class:`intake.forms.screening.Screening`: rate limits, honeypot, captcha). Their
shapes and mappings are in ``intake.connectors.formats``.

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
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from intake.connectors.formats import (
    WEB_TO_LEAD_BODY,
    WEB_TO_LEAD_META,
    HubSpotAnswer,
    HubSpotErrors,
    HubSpotSubmission,
    WebToLeadAccepted,
    hubspot_consent,
    hubspot_error,
    hubspot_field_errors,
    hubspot_fields,
    return_url,
)
from intake.forms.bodies import read_form
from intake.forms.messages import language
from intake.forms.protection import TooManyRequests
from intake.forms.website import PAGE_HEADERS, answer_page
from intake.service import Invalid, NotStored, UnknownForm, unavailable
from leadrelay.auth import PUBLIC
from leadrelay.contract import RETRY_AFTER, inline_schema, request_body
from leadrelay.events import Envelope
from leadrelay.http import field_errors

if TYPE_CHECKING:
    from intake.resources import IntakeContext


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
            return hubspot_error(
                404, f"No form {formGuid} in portal {portalId}", [(f"form {formGuid} not found", "FORM_NOT_FOUND")]
            )
        try:
            screening.limit(request, f"form:{form.id}")
        except TooManyRequests as exc:
            return hubspot_error(429, str(exc.detail), [(str(exc.detail), "RATE_LIMITED")], exc.headers)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/json", ""):
            raise HTTPException(415, f"expected application/json, got {ctype}")
        try:
            # Python's parser, as intake's other routes: an escaped lone surrogate is valid JSON,
            # and the input policy then refuses it naming the field.
            parsed = json.loads(await request.body())
        except ValueError as exc:
            return hubspot_error(400, "The request is not valid", [(f"Error in 'body'. {exc}", "INVALID_JSON")])
        try:
            sub = HubSpotSubmission.model_validate(parsed)
        except ValidationError as exc:
            return hubspot_error(
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
        fields = hubspot_fields(sub)
        answer = HubSpotAnswer(inlineMessage=form.hubspot.inline_message if form.hubspot else None)
        if form.hubspot and form.hubspot.redirect_uri:
            answer = HubSpotAnswer(redirectUri=form.hubspot.redirect_uri)
        try:
            if not await screening.passes(form, fields, request, sub.context.ipAddress):
                return answer
            consent = hubspot_consent(sub, form.id, ctx.clock.now())
            await publish(lambda: intake.form_submission(form.id, fields, None, via="hubspot", consent=consent))
        except Invalid as exc:
            return hubspot_field_errors(exc.errors, form)
        except HTTPException as exc:  # the captcha's 422
            if exc.status_code == 422 and isinstance(exc.detail, list):
                return hubspot_field_errors(exc.detail, form)
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
            back, _ = return_url(request.headers.get("referer"), source.return_hosts)
            lang = language(request.headers.get("accept-language", ""))
            return HTMLResponse(answer_page(form, lang, errors, back), status_code=422, headers=PAGE_HEADERS)

        ret_key = next((k for k in raw if k.lower() == "returl"), None)
        ret_url, problem = return_url(raw.get(ret_key) if ret_key else None, source.return_hosts)
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
