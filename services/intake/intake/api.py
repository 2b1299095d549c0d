"""Intake's HTTP routes: the front door for website forms and tracking clients.

The routes parse the request and call the use cases in ``intake.service``. A
202 means the event is stored: acknowledged by the broker, or in intake's spool
while the broker is down or slow; if neither can store it, 503 and the client
retries.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from intake.domain import normalise_email
from intake.formats import read_form
from intake.protection import TooManyRequests
from intake.schema import SUBMISSION_BODY, event_body
from intake.service import Invalid, NotStored, UnknownForm, unavailable
from intake.tracking import build_tracking_router
from intake.website import (
    MESSAGES,
    PAGE_HEADERS,
    Script,
    answer_page,
    back_link,
    embed_script,
    error_page,
    language,
    page_of,
    paste_html,
    thank_you,
    track_script,
    wants_html,
)
from leadrelay.auth import EVENT_SENDERS, PUBLIC, Principal, allow
from leadrelay.contract import RETRY_AFTER, AwareDateTime, FormId
from leadrelay.events import ActivityType, Envelope
from leadrelay.http import field_errors
from leadrelay.inputs import Text
from leadrelay.logging import get_logger
from leadrelay.unavailable import Unavailable

if TYPE_CHECKING:
    from intake.resources import IntakeContext

log = get_logger("intake")


class Accepted(BaseModel):
    lead_id: str
    event_id: str


class JavaScript(Response):
    media_type = "text/javascript"


class ScriptInfo(BaseModel):
    url: str = Field(description="where to load it from")
    integrity: str = Field(description="the SRI hash (sha384) for <script integrity=...>")
    bytes: int = Field(description="its size, not minified, not compressed")


class Embed(BaseModel):
    """What to paste into a page to put a form on it."""

    form_id: str
    script: ScriptInfo
    tracking: ScriptInfo
    embed: str = Field(description="the two-line embed: a placeholder and the script")
    html: str = Field(description="a plain HTML form that posts without scripts; the script enhances it")
    tracking_html: str = Field(description="the tracking script's tag (put the website source's write key in)")


_SCRIPT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/javascript": {"schema": {"type": "string"}}},
        "headers": {
            "ETag": {"schema": {"type": "string"}},
            "Cache-Control": {"schema": {"type": "string"}},
        },
    },
    304: {"description": "Not modified (If-None-Match matched the ETag)."},
}
_PAGE = {"text/html": {"schema": {"type": "string"}}}
_BROWSER_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": (
            "Accepted. A plain HTML form post (form body, Accept: text/html) with no page to land on (no"
            " thank-you URL, no page of the form's origins) gets intake's own thank-you page (text/html)."
        ),
        "content": _PAGE,
    },
    422: {
        "description": (
            "Field errors, each naming its field. A plain HTML form post with no page to land on gets"
            " them as intake's own page (text/html) in the visitor's language."
        ),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FieldErrors"}}, **_PAGE},
    },
    503: {
        "description": (
            "The event could not be stored (the broker and intake's spool), or the captcha cannot be"
            " checked: retry. A plain HTML form post with no page to land on gets intake's own page."
        ),
        "headers": RETRY_AFTER,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DependencyDown"}}, **_PAGE},
    },
    303: {
        "description": (
            "A plain HTML form post (form body, Accept: text/html): to the form's thank-you page, or back to"
            " the form's page (on one of its origins) with lr_form and lr_submitted or lr_error.<field>"
            " query parameters; to its error URL when it has errors."
        ),
        "headers": {"Location": {"schema": {"type": "string"}}},
    },
    403: {
        "description": "Posted from a web origin the form does not allow (forms[].origins): says which.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    },
}


def _script(script: Script, if_none_match: str | None) -> Response:
    headers = {
        "ETag": script.etag,
        "Cache-Control": "public, max-age=300",
        "Access-Control-Allow-Origin": "*",  # public; <script crossorigin integrity=...> needs it
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
    }
    if if_none_match is not None and script.etag in [t.strip().removeprefix("W/") for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    return JavaScript(script.body, headers=headers)


class ActivityIn(BaseModel):
    """A behaviour event for a lead known by email or lead id."""

    model_config = ConfigDict(extra="forbid")

    type: ActivityType
    email: Text | None = None
    lead_id: uuid.UUID | None = None
    url: Text | None = Field(default=None, max_length=2000)
    occurred_at: AwareDateTime | None = Field(default=None, description="default: when intake receives it")
    properties: dict[Annotated[Text, Field(max_length=100)], Annotated[Text, Field(max_length=1000)]] = Field(
        default_factory=dict, max_length=50
    )
    message_id: Text | None = Field(default=None, max_length=200, description="the client's id, for deduplication")

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return normalise_email(v)
        except Exception as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _who(self) -> ActivityIn:
        if self.email is None and self.lead_id is None:
            raise ValueError("give the lead's email or lead_id")
        return self


def build_router(ctx: IntakeContext) -> APIRouter:
    router = APIRouter(tags=["intake"])
    intake = ctx.resources.intake
    screening = ctx.resources.screening

    async def accept(build: Callable[[], Envelope]) -> Accepted:
        try:
            accepted = await intake.accept(build())
        except UnknownForm as exc:
            raise HTTPException(404, str(exc)) from None
        except Invalid as exc:
            raise field_errors(exc.errors) from None
        except NotStored as exc:
            raise unavailable(exc) from exc
        return Accepted(lead_id=accepted.lead_id, event_id=accepted.event_id)

    # The website's scripts, rendered from the rules once: their bytes, ETag and hash are fixed until a restart.
    embeds = {f.id: embed_script(f) for f in ctx.rules.forms}
    tracker = track_script(ctx.rules.website)

    def base_url(request: Request) -> str:
        if "public_base_url" in ctx.settings.model_fields_set:
            return ctx.settings.public_base_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    # Public: a website form cannot keep a secret.
    @router.get("/v1/forms", dependencies=[PUBLIC])
    async def list_forms() -> list[dict[str, Any]]:
        # What a page needs to render the form (the consent text, the honeypot's and captcha's
        # fields); how the captcha is verified stays on the server.
        private = {"captcha": {"secret_env", "verify_url", "fail_open"}}
        return [f.model_dump(exclude=private) for f in ctx.rules.forms]

    @router.get(
        "/v1/forms/{form_id}/embed.js", response_class=JavaScript, dependencies=[PUBLIC], responses=_SCRIPT_RESPONSES
    )
    async def embed_js(
        form_id: FormId, if_none_match: Annotated[str | None, Header(max_length=1000)] = None
    ) -> Response:
        """The form's embed script: renders the form in the page's language, validates, posts with fetch()."""
        script = embeds.get(form_id)
        if script is None:
            raise HTTPException(404, str(UnknownForm(form_id, list(embeds))))
        return _script(script, if_none_match)

    @router.get("/v1/track.js", response_class=JavaScript, dependencies=[PUBLIC], responses=_SCRIPT_RESPONSES)
    async def track_js(if_none_match: Annotated[str | None, Header(max_length=1000)] = None) -> Response:
        """The tracking script: page views and named events with a first-party anonymous id."""
        return _script(tracker, if_none_match)

    @router.get("/v1/forms/{form_id}/embed", response_model=Embed, dependencies=[PUBLIC])
    async def embed(form_id: FormId, request: Request) -> Embed:
        """What to paste into a page for this form, with the scripts' integrity hashes."""
        form = ctx.rules.form(form_id)
        if form is None:
            raise HTTPException(404, str(UnknownForm(form_id, list(embeds))))
        base = base_url(request)
        paste = paste_html(form, base, embeds[form.id], tracker)
        return Embed(
            form_id=form.id,
            script=ScriptInfo(
                url=f"{base}/v1/forms/{form.id}/embed.js",
                integrity=embeds[form.id].integrity,
                bytes=len(embeds[form.id].body),
            ),
            tracking=ScriptInfo(url=f"{base}/v1/track.js", integrity=tracker.integrity, bytes=len(tracker.body)),
            embed=paste["embed"],
            html=paste["html"],
            tracking_html=paste["tracking"],
        )

    @router.post(
        "/v1/forms/{form_id}/submissions",
        status_code=202,
        response_model=Accepted,
        dependencies=[PUBLIC],
        openapi_extra=SUBMISSION_BODY,
        responses={
            **_BROWSER_RESPONSES,
            429: {
                "description": (
                    "Too many posts from this address or to this form. A plain HTML form post gets a 303 back"
                    " to its page with the error, or intake's own page (text/html)."
                ),
                "headers": RETRY_AFTER,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}, **_PAGE},
            },
        },
    )
    async def submit_form(
        form_id: FormId,
        request: Request,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Accepted | Response:
        form = ctx.rules.form(form_id)
        if form is None:  # before reading a body meant for no form
            raise HTTPException(404, str(UnknownForm(form_id, [f.id for f in ctx.rules.forms])))
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        html = wants_html(ctype, request.headers.get("accept", ""))
        # A browser posting a plain HTML form: a page to land on, never JSON. A 303 to the form's
        # thank-you or error page, or back to the page it was posted from; with none of them known,
        # intake's own short page in the visitor's language.
        referer = request.headers.get("referer")
        page = page_of({}, referer) if html else None
        lang = language(request.headers.get("accept-language", ""))

        def land(
            target: str | None, status: int, errors: list[dict[str, Any]] | str | None, retry: str | None = None
        ) -> Response:
            if target is not None:
                return RedirectResponse(target, status_code=303)
            headers = {**PAGE_HEADERS, **({"Retry-After": retry} if retry else {})}
            body = answer_page(form, lang, errors, back_link(form, page, referer))
            return HTMLResponse(body, status_code=status, headers=headers)

        try:
            screening.limit(request, f"form:{form_id}")  # 429 with Retry-After
        except TooManyRequests as exc:
            if not html:
                raise
            message = MESSAGES[lang]["error"]
            return land(error_page(form, page, message), 429, message, (exc.headers or {}).get("Retry-After"))
        try:
            fields = await _read_fields(request, ctx.settings.max_form_fields)
        except HTTPException as exc:  # a body that is not a form's text: back to the form, as other errors
            if not html or exc.status_code != 422:
                raise
            return land(error_page(form, page, exc.detail), 422, exc.detail)
        page = page_of(fields, referer) if html else None

        try:
            human = await screening.passes(form, fields, request)
        except HTTPException as exc:  # a missing or refused captcha: back to the form with the error
            if not html or exc.status_code != 422:
                raise
            return land(error_page(form, page, exc.detail), 422, exc.detail)
        except Unavailable:  # the captcha's verifier is down
            if not html:
                raise
            message = MESSAGES[lang]["error"]
            return land(error_page(form, page, message), 503, message, "1")
        if not human:  # a bot filled the honeypot: the usual answer, nothing kept
            if html:
                return land(thank_you(form, page), 202, None)
            return Accepted(lead_id=intake.decoy_lead_id(fields), event_id=str(uuid.uuid4()))
        if not html:
            return await accept(lambda: intake.form_submission(form_id, fields, idempotency_key))
        try:
            await intake.accept(intake.form_submission(form_id, fields, idempotency_key))
        except UnknownForm as exc:
            raise HTTPException(404, str(exc)) from None
        except Invalid as exc:
            return land(error_page(form, page, exc.errors), 422, exc.errors)
        except NotStored as exc:
            log.warning("form_not_stored", form_id=form_id, error=str(exc))
            message = MESSAGES[lang]["error"]
            return land(error_page(form, page, message), 503, message, "1")
        return land(thank_you(form, page), 202, None)

    @router.post("/v1/events", status_code=202, response_model=Accepted, openapi_extra=event_body(ActivityIn))
    async def record_event(
        request: Request,
        who: Annotated[Principal, Depends(allow(*EVENT_SENDERS))],
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Accepted:
        """A behaviour event from a tracking client (its source's API key) or a signed-in person."""
        body = await _read_json(request)
        try:
            activity = ActivityIn.model_validate(body)
        except ValidationError as exc:
            raise field_errors(
                [
                    {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors(include_url=False)
                ]
            ) from None
        return await accept(
            lambda: intake.activity(
                activity.type,
                email=activity.email,
                lead_id=activity.lead_id,
                occurred_at=activity.occurred_at,
                url=activity.url,
                properties=activity.properties,
                client_key=activity.message_id or idempotency_key,
                actor=who.actor,
            )
        )

    router.include_router(build_tracking_router(ctx))
    return router


async def _read_json(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        raise HTTPException(415, f"expected application/json, got {ctype}")
    try:
        return await request.json()
    except ValueError as exc:
        raise field_errors([{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}]) from None


async def _read_fields(request: Request, max_fields: int) -> dict[str, Any]:
    """A JSON object of fields, or a form as a plain HTML form posts it; at most ``max_fields`` of them."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return await read_form(request, max_fields)
    body = await _read_json(request)
    if not isinstance(body, dict):
        raise field_errors([{"loc": ["body"], "msg": "expected a JSON object of fields", "type": "type_error"}])
    if len(body) > max_fields:
        raise field_errors([{"loc": ["body"], "msg": f"more than {max_fields} fields", "type": "too_long"}])
    return body
