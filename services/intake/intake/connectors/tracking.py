"""The Segment/RudderStack HTTP tracking API on intake: ``POST /v1/batch``, ``/v1/identify``,
``/v1/track``, ``/v1/page``, ``/v1/group``, ``/v1/alias`` and analytics.js's short paths
(``/v1/b``, ``/v1/i``...), so the tracking clients a website already runs can post here.

- **Write key**: a tracking source's key (the rules' ``sources`` with role ``tracking``), as
  the HTTP Basic user name (the SDKs), a bearer credential, ``X-API-Key`` or the body's
  ``writeKey`` (analytics.js). Another source's key: 403; anything else: 401.
- **Body**: JSON, also sent as ``text/plain`` (analytics.js avoids a CORS preflight so), plain or
  ``Content-Encoding: gzip``. Segment's limits apply to the decompressed body: 32 KB per message,
  500 KB per batch; 413 beyond (decompression stops there: no gzip bombs).
- **All or nothing**: every message of a batch is checked first; any bad one is a 400 naming
  each problem (``["body", "batch", 3, "userId"]``) and nothing of the batch is recorded, so
  what the sender hears matches what was kept. A good batch answers 200 ``{"success": true}``
  (what the SDKs expect) once the broker has every event; 503 otherwise, and the retry is
  deduplicated by ``messageId``.
- Error bodies carry ``code`` and ``message`` besides ``detail``: the SDKs read those two.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import zlib
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from intake.connectors.segment import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    SHORT,
    Mapped,
    Message,
    map_message,
    parse_message,
)
from intake.cors import foreign_origin
from intake.service import NotStored
from leadrelay.auth import PUBLIC, Authenticator
from leadrelay.contract import FieldError, inline_schema
from leadrelay.events import Actor, Envelope
from leadrelay.limits import body_limit, json_too_deep
from leadrelay.logging import get_logger
from leadrelay.rules import SourceRole
from leadrelay.unavailable import RETRY_AFTER_SECONDS

if TYPE_CHECKING:
    from intake.resources import IntakeContext

log = get_logger("intake.tracking")
# Bearer first: the app's other routes answer so; the SDKs send the key as the Basic user name.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="leadrelay", Basic realm="leadrelay"'}
CALLS = ("batch", "identify", "track", "page", "group", "alias")
MEDIA_TYPES = ("application/json", "text/plain", "")


class Success(BaseModel):
    success: bool = Field(description="always true: every message was recorded (or deliberately ignored)")


class TrackingError(BaseModel):
    """An error as the tracking SDKs read it (``code``, ``message``), with Leadrelay's ``detail``."""

    detail: str | list[FieldError]
    code: str | None = Field(default=None, description="invalid_request, unauthorized, forbidden, too_large...")
    message: str | None = None


class _Refused(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str | list[dict[str, Any]],
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(code)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers
        self.extra = extra or {}


def _response(exc: _Refused) -> JSONResponse:
    if isinstance(exc.detail, str):
        message = exc.detail
    else:
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.detail[:10])
    body = {"detail": exc.detail, "code": exc.code, "message": message, **exc.extra}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def gunzip(data: bytes, limit: int) -> bytes:
    """``data`` decompressed, at most ``limit`` bytes (413 past it, read no further); 400 if broken."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise _Refused(400, "invalid_request", f"the gzip body cannot be decompressed: {exc}") from None
    if len(out) > limit:
        raise _Refused(413, "too_large", f"the decompressed body is larger than {limit} bytes")
    if not inflater.eof:
        raise _Refused(400, "invalid_request", "the gzip body is truncated")
    return out


def write_key(request: Request, body: dict[str, Any]) -> str | None:
    """The write key: HTTP Basic user name, bearer credential, X-API-Key or the body's writeKey."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _Refused(401, "unauthorized", "the Basic credential is not base64 of 'writeKey:'") from None
        return decoded.partition(":")[0] or None
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = request.headers.get("x-api-key") or body.get("writeKey")
    return key if isinstance(key, str) and key else None


def tracking_source(auth: Authenticator, key: str | None, origin: str | None = None) -> Actor:
    """The tracking source whose write key this is; a web page (a cross-origin ``origin``) may use it
    only from the source's own ``origins``."""
    if key is None:
        raise _Refused(
            401,
            "unauthorized",
            "send the write key (a tracking source's key): as the Basic user name, a bearer credential or writeKey",
            CHALLENGE,
        )
    source_id = auth.api_keys.match(key)
    source = auth.rules.source(source_id) if source_id else None
    if source is None:
        raise _Refused(401, "unauthorized", "unknown write key", CHALLENGE)
    if source.role is not SourceRole.TRACKING:
        raise _Refused(403, "forbidden", f"the key of source {source.id!r} ({source.role.value}) is no write key")
    if origin is not None and origin not in source.origins:
        raise _Refused(
            403,
            "forbidden",
            f"the origin {origin!r} may not send tracking events with the write key of source {source.id!r}"
            " (its origins are set in the rules file)",
        )
    return Actor(kind="source", id=source.id, role=source.role.value)


def _schema(call: str) -> dict[str, Any]:
    message = inline_schema(Message)
    message["additionalProperties"] = True
    message["properties"]["writeKey"] = {"type": "string", "description": "the write key, if not in a header"}
    if call == "batch":
        body: dict[str, Any] = {
            "type": "object",
            "required": ["batch"],
            "properties": {"batch": {"type": "array", "items": message}, "writeKey": {"type": "string"}},
            "additionalProperties": True,
        }
    else:
        body = message
        body["properties"]["type"] = {"type": "string", "enum": [call, "screen"] if call == "page" else [call]}
        body["required"] = []
    return body


def _openapi(call: str) -> dict[str, Any]:
    limit = MAX_BATCH_BYTES if call == "batch" else MAX_MESSAGE_BYTES
    schema = _schema(call)
    errors = {"application/json": {"schema": inline_schema(TrackingError)}}
    statuses = {
        "400": "Bad JSON or a bad message: every problem, located (`detail`); nothing of the body was recorded.",
        "401": "No write key, or an unknown one.",
        "403": "The key is another source's (not a tracking source's), or a web page posted it from an origin"
        " that is not one of its source's origins.",
        "413": "Larger than Segment's limits (32 KB a message, 500 KB a batch), decompressed.",
        "415": "Neither JSON nor text/plain, or an encoding other than gzip.",
        "422": "JSON nested too deeply.",
    }
    return {
        **body_limit(limit),
        "requestBody": {
            "required": True,
            "description": "Segment's tracking spec; JSON, also as text/plain, optionally gzip-compressed.",
            "content": {"application/json": {"schema": schema}, "text/plain": {"schema": schema}},
        },
        "responses": {
            status: {
                "description": text,
                # 422 in the app's shape (FieldErrors, which allows the SDKs' code and message besides).
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FieldErrors"}}}
                if status == "422"
                else errors,
            }
            for status, text in statuses.items()
        },
    }


def build_tracking_router(ctx: IntakeContext) -> APIRouter:
    intake = ctx.resources.intake
    router = APIRouter(tags=["tracking"])

    async def receive(request: Request, call: str) -> JSONResponse:
        try:
            await _receive(request, call)
        except _Refused as exc:
            return _response(exc)
        return JSONResponse({"success": True})

    async def _receive(request: Request, call: str) -> None:
        limit = MAX_BATCH_BYTES if call == "batch" else MAX_MESSAGE_BYTES
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in MEDIA_TYPES:
            raise _Refused(415, "unsupported_media_type", f"expected application/json or text/plain, got {media}")
        raw = await request.body()
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding == "gzip":
            raw = gunzip(raw, limit)
        elif encoding not in ("", "identity"):
            raise _Refused(415, "unsupported_media_type", f"unsupported Content-Encoding {encoding}: send gzip or none")
        if len(raw) > limit:
            raise _Refused(413, "too_large", f"the body is larger than {limit} bytes")
        depth = ctx.settings.max_json_depth
        if json_too_deep(raw, depth):
            err = {"loc": ["body"], "msg": f"JSON nested deeper than {depth} levels", "type": "json_too_deep"}
            raise _Refused(422, "invalid_request", [err])
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _Refused(400, "invalid_request", f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _Refused(400, "invalid_request", "expected a JSON object")
        actor = tracking_source(request.app.state.auth, write_key(request, body), foreign_origin(request.scope))
        if call == "batch":
            items = body.get("batch")
            if not isinstance(items, list):
                err = {"loc": ["body", "batch"], "msg": "expected a list of messages", "type": "type_error"}
                raise _Refused(400, "invalid_request", [err])
            located: list[tuple[list[str | int], Any]] = [(["batch", i], m) for i, m in enumerate(items)]
        else:
            located = [([], body)]
        received = intake.clock.now()
        errors: list[dict[str, Any]] = []
        envelopes: list[Envelope] = []
        ignored: list[str] = []
        for loc, raw_message in located:
            size = len(json.dumps(raw_message, ensure_ascii=False).encode("utf-8", "surrogatepass"))
            if size > MAX_MESSAGE_BYTES:
                where = ".".join(str(p) for p in loc) or "the message"
                raise _Refused(413, "too_large", f"{where} is larger than {MAX_MESSAGE_BYTES} bytes")
            message = parse_message(raw_message, loc, None if call == "batch" else call)
            if not isinstance(message, Message):
                errors += message
                continue
            mapped: Mapped = map_message(message, loc, ctx.rules.tracking, intake.namespace, received, actor)
            errors += mapped.errors
            if mapped.event is not None:
                event_id = intake.event_id(f"tracking:{actor.id}", message.messageId)
                envelopes.append(
                    Envelope.new(mapped.event, source="/leadrelay/intake", time=received, event_id=event_id)
                )
            elif mapped.ignored:
                ignored.append(mapped.ignored)
        if errors:
            raise _Refused(400, "invalid_request", errors)
        for reason in ignored:
            log.info("tracking_message_ignored", source=actor.id, reason=reason)
        # Each key's (lead's or visitor's) events one after the other, so that none overtakes another
        # when some go to the spool; the keys side by side.
        by_key: dict[str, list[Envelope]] = {}
        for env in envelopes:
            by_key.setdefault(env.subject, []).append(env)

        async def in_order(events: list[Envelope]) -> None:
            for env in events:
                await intake.accept(env)

        results = await asyncio.gather(*(in_order(events) for events in by_key.values()), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            if not all(isinstance(r, NotStored) for r in failed):
                raise failed[0]
            # As every 503 of the API: Retry-After and the dependency that could not be reached.
            not_stored = [r for r in failed if isinstance(r, NotStored)]
            dependencies = sorted({d for r in not_stored for d in r.dependency.split(",")})
            why = str(not_stored[0]).removesuffix("; retry later")
            raise _Refused(
                503,
                "unavailable",
                f"the events could not be stored ({why}); retry after {RETRY_AFTER_SECONDS} s",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
                {"dependency": ",".join(dependencies)},
            )

    for call in CALLS:
        shorts = [s for s, c in SHORT.items() if c == call]
        for path in (f"/v1/{call}", *(f"/v1/{s}" for s in shorts)):
            router.add_api_route(
                path,
                _bind(receive, call),
                methods=["POST"],
                response_model=Success,
                dependencies=[PUBLIC],
                openapi_extra=_openapi(call),
                name=f"tracking_{path.rsplit('/', 1)[1]}",
                summary=f"Segment/RudderStack {call}",
            )
    return router


def _bind(receive: Any, call: str) -> Any:
    async def endpoint(request: Request) -> JSONResponse:
        return await receive(request, call)  # type: ignore[no-any-return]

    return endpoint
