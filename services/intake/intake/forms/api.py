"""The form routes: the forms a page may render, their scripts and what to paste, and the form post
(``POST /v1/forms/{form_id}/submissions``: a JSON object of fields, or a plain HTML form).

A route parses the request, calls its use case (``intake.forms.service.FormPosts``) and maps its
errors: :func:`answer_refused` answers JSON to an API client or a script, and to a browser posting a
plain HTML form a page to land on (a 303 to the form's pages, or intake's own page in the visitor's
language). A 202 means the event is stored: acknowledged by the broker, or in intake's spool while the
broker is down or slow; if neither can store it, 503 and the client retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from intake.forms.bodies import read_fields
from intake.forms.messages import MESSAGES, language
from intake.forms.protection import TooManyRequests
from intake.forms.service import Refused
from intake.forms.website import (
    PAGE_HEADERS,
    Script,
    answer_page,
    back_link,
    embed_script,
    error_page,
    page_of,
    paste_html,
    thank_you,
    track_script,
    wants_html,
)
from intake.schema import SUBMISSION_BODY, Accepted
from intake.service import Invalid, NotStored, UnknownForm, unavailable
from leadrelay.auth import PUBLIC
from leadrelay.contract import RETRY_AFTER, FormId
from leadrelay.http import field_errors
from leadrelay.logging import get_logger
from leadrelay.rules import Form
from leadrelay.unavailable import Unavailable

if TYPE_CHECKING:
    from intake.resources import IntakeContext

log = get_logger("intake")


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


def build_router(ctx: IntakeContext) -> APIRouter:
    router = APIRouter(tags=["intake"])
    posts = ctx.resources.form_posts

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
        post = Post.of(form, request)
        try:
            submitted = await posts.submit(
                form, request, lambda: read_fields(request, ctx.settings.max_form_fields), idempotency_key
            )
        except Refused as refused:
            return answer_refused(post, refused)
        if not post.html:
            return Accepted(lead_id=submitted.accepted.lead_id, event_id=submitted.accepted.event_id)
        # A bot caught by the honeypot lands where a person would.
        page = post.page(submitted.fields)
        return post.land(page, thank_you(form, page), 202, None)

    return router


@dataclass(frozen=True)
class Post:
    """A form post's kind: a browser posting a plain HTML form (``html``) gets a page to land on,
    never JSON: a 303 to the form's thank-you or error page, or back to the page it was posted
    from; with none of them known, intake's own short page in the visitor's language."""

    form: Form
    html: bool
    referer: str | None
    lang: str

    @classmethod
    def of(cls, form: Form, request: Request) -> Post:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        return cls(
            form=form,
            html=wants_html(ctype, request.headers.get("accept", "")),
            referer=request.headers.get("referer"),
            lang=language(request.headers.get("accept-language", "")),
        )

    def page(self, fields: dict[str, Any] | None) -> str | None:
        """The page the form was posted from (its fields' page_url once they are read, else the Referer)."""
        return page_of(fields or {}, self.referer)

    def land(
        self,
        page: str | None,
        target: str | None,
        status: int,
        errors: list[dict[str, Any]] | str | None,
        retry: str | None = None,
    ) -> Response:
        """To ``target``, else intake's own page (linking back to ``page`` or the site posted from)."""
        if target is not None:
            return RedirectResponse(target, status_code=303)
        headers = {**PAGE_HEADERS, **({"Retry-After": retry} if retry else {})}
        body = answer_page(self.form, self.lang, errors, back_link(self.form, page, self.referer))
        return HTMLResponse(body, status_code=status, headers=headers)


def answer_refused(post: Post, refused: Refused) -> Response:
    """The one answer to a refused form post, by the request's kind: for JSON the API's error (raised,
    for the app's handlers: 404, 415, 422 with the field errors, 429 with Retry-After, 503 naming what
    could not be reached), for a browser the page to land on with the errors, or the general error
    (429 with Retry-After, 503 with Retry-After: 1)."""
    exc = refused.cause
    if isinstance(exc, UnknownForm):
        raise HTTPException(404, str(exc)) from None
    if not post.html:
        if isinstance(exc, Invalid):
            raise field_errors(exc.errors) from None
        if isinstance(exc, NotStored):
            raise unavailable(exc) from exc
        raise exc
    form, page = post.form, post.page(refused.fields)
    message = MESSAGES[post.lang]["error"]
    if isinstance(exc, TooManyRequests):
        return post.land(page, error_page(form, page, message), 429, message, (exc.headers or {}).get("Retry-After"))
    if isinstance(exc, Invalid):
        return post.land(page, error_page(form, page, exc.errors), 422, exc.errors)
    if isinstance(exc, HTTPException) and exc.status_code == 422:
        # a body that is not a form's text, a missing or refused captcha: back to the form
        return post.land(page, error_page(form, page, exc.detail), 422, exc.detail)
    if isinstance(exc, Unavailable):  # the captcha's verifier is down
        return post.land(page, error_page(form, page, message), 503, message, "1")
    if isinstance(exc, NotStored):
        log.warning("form_not_stored", form_id=form.id, error=str(exc))
        return post.land(page, error_page(form, page, message), 503, message, "1")
    raise exc
