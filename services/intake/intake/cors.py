"""Cross-origin requests to intake, per form and per source, from the rules file.

- A form's submissions (``/v1/forms/{id}/submissions``) may come from the form's ``origins``.
- The tracking endpoints (Segment's ``/v1/page`` = ``/v1/p``, ``/v1/track`` = ``/v1/t``,
  ``/v1/identify``, ``/v1/batch``...) from the ``origins`` of any source here (the write key, which
  may be in the body, says which source); the route then holds the request to its own source's
  ``origins`` (``intake.connectors.tracking``: 403 for another source's origin).
- HubSpot's Forms API (``/submissions/v3/integration/submit/{portalId}/{formGuid}``) from the
  ``origins`` of the form with that address.
- Salesforce's Web-to-Lead (``/servlet/servlet.WebToLead``) from the ``origins`` of the forms the
  ``web_to_lead`` sources count as (the source is named in the body, which the policy does not
  read). A post from another origin is not refused there: Web-to-Lead forms are plain HTML posts
  from anywhere, as with Salesforce; such a page cannot read the answer, and ``retURL`` is held to
  the source's ``return_hosts``. A preflight from another origin is refused.
- The scripts (``embed.js``, ``track.js``) are public and served to any origin by their routes.

A preflight from an allowed origin gets 204 with the methods and headers the snippet and the
tracking SDKs send; one from another origin gets 403 without CORS headers, and so does the actual
request (with a JSON ``detail`` naming the origin), before any route reads the body. A request
without an ``Origin`` (a server, curl) or from intake's own origin is not a cross-origin one and
passes as before.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadrelay.rules import Rules

FORM_PATH = re.compile(r"^/v1/forms/([^/]+)/submissions$")
HUBSPOT_PATH = re.compile(r"^/submissions/v3/integration/submit/([^/]+)/([^/]+)$")
WEB_TO_LEAD_PATH = "/servlet/servlet.WebToLead"
TRACKING_PATHS = frozenset(
    "/v1/" + p
    for p in (
        "page",
        "p",
        "track",
        "t",
        "identify",
        "i",
        "group",
        "g",
        "alias",
        "a",
        "screen",
        "s",
        "batch",
        "b",
        "import",
    )
)
ALLOW_METHODS = "POST, OPTIONS"
ALLOW_HEADERS = "Content-Type, Authorization, AnonymousId, Idempotency-Key, Accept, Accept-Language"
MAX_AGE = "600"


@dataclass(frozen=True)
class Decision:
    governed: bool  # a path this policy decides for
    allowed: bool = False
    what: str = ""  # for the refusal: "post form demo-request"
    refuse_posts: bool = True  # False: only a preflight from another origin is refused


def decide(rules: Rules, path: str, origin: str) -> Decision:
    """Whether ``origin`` may call ``path`` (pure)."""
    if m := FORM_PATH.match(path):
        form = rules.form(m.group(1))
        if form is None:
            return Decision(governed=False)  # the route answers 404
        return Decision(True, origin in form.origins, f"post form {form.id}")
    if m := HUBSPOT_PATH.match(path):
        form = rules.hubspot_form(m.group(1), m.group(2))
        if form is None:
            return Decision(governed=False)  # the route answers HubSpot's 404
        return Decision(True, origin in form.origins, f"post HubSpot form {form.id}")
    if path == WEB_TO_LEAD_PATH:
        forms = [rules.form(w.form) for w in rules.web_to_lead]
        allowed = any(f is not None and origin in f.origins for f in forms)
        return Decision(True, allowed, "post Web-to-Lead forms", refuse_posts=False)
    if path in TRACKING_PATHS:
        allowed = any(origin in s.origins for s in rules.sources)
        return Decision(True, allowed, "send tracking events")
    return Decision(governed=False)


def _own_origin(scope: Scope, headers: Headers) -> str | None:
    host = headers.get("host")
    return f"{scope.get('scheme', 'http')}://{host}".lower() if host else None


def foreign_origin(scope: Scope) -> str | None:
    """The request's ``Origin`` when it is a cross-origin one (not absent, not intake's own)."""
    headers = Headers(scope=scope)
    origin = headers.get("origin")
    return None if origin is None or origin.lower() == _own_origin(scope, headers) else origin


class Cors:
    """ASGI middleware: intake's CORS policy (see the module's docstring)."""

    def __init__(self, app: ASGIApp, rules: Rules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or origin.lower() == _own_origin(scope, headers):
            await self.app(scope, receive, send)
            return
        decision = decide(self.rules, scope["path"], origin)
        if not decision.governed:
            await self.app(scope, receive, send)
            return
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if not decision.allowed and not preflight and not decision.refuse_posts:
            await self.app(scope, receive, send)  # no CORS headers: the page cannot read the answer
            return
        if not decision.allowed:
            detail = f"the origin {origin!r} may not {decision.what} (allowed origins are set in the rules file)"
            await _answer(send, 403, json.dumps({"detail": detail}).encode(), [(b"content-type", b"application/json")])
            return
        cors = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
        if preflight:
            await _answer(
                send,
                204,
                b"",
                cors
                + [
                    (b"access-control-allow-methods", ALLOW_METHODS.encode()),
                    (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                    (b"access-control-max-age", MAX_AGE.encode()),
                ],
            )
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *cors]
            await send(message)

        await self.app(scope, receive, with_cors)


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
