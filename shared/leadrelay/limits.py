"""Limits on a request, enforced before anything parses it.

:class:`RequestLimits` is the outermost middleware of every service's app:

- request line and headers larger than ``LEADRELAY_MAX_HEADER_BYTES``: 431;
- a body larger than the route's limit (``LEADRELAY_MAX_BODY_BYTES``, or what the route
  declares with :func:`body_limit`): 413, as soon as ``Content-Length`` says so or the
  streamed body passes the limit, without reading the rest; the connection is closed;
- a JSON body nested deeper than ``LEADRELAY_MAX_JSON_DEPTH``: 422, found by a scan of the
  bytes before any JSON parser (ours or FastAPI's) recurses into it.

The body, at most the limit, is then handed to the app as one message. The server has a
header limit of its own (:func:`http_protocol`), so oversized headers are refused while
they arrive rather than after they were read; the middleware's check covers any other
ASGI server.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadrelay.logging import get_logger

log = get_logger("leadrelay.limits")

REFUSED = Counter("leadrelay_http_requests_refused_total", "Requests refused before parsing, by limit", ["reason"])

BODY_LIMIT_KEY = "x-max-body-bytes"
_FORM_TYPES = (b"application/x-www-form-urlencoded", b"multipart/form-data")
# A JSON string (escapes included) or one bracket; the scan skips strings whole.
_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPEN = frozenset(b"[{")


def body_limit(max_bytes: int) -> dict[str, Any]:
    """``openapi_extra`` for a route that accepts a body larger (or smaller) than the default:
    ``@router.post(path, openapi_extra=body_limit(settings.some_limit))``. The limit shows in
    the OpenAPI document as ``x-max-body-bytes``."""
    return {BODY_LIMIT_KEY: max_bytes}


def declared_limits(routes: Sequence[BaseRoute]) -> list[tuple[Route, int]]:
    """The routes among ``routes`` that declare their own body limit with :func:`body_limit`."""
    return [
        (route, int(extra[BODY_LIMIT_KEY]))
        for route in routes
        if isinstance(route, Route)
        and isinstance(extra := getattr(route, "openapi_extra", None), dict)
        and BODY_LIMIT_KEY in extra
    ]


def json_too_deep(body: bytes, max_depth: int) -> bool:
    """Whether the JSON document in ``body`` nests arrays and objects deeper than ``max_depth``.

    No recursion and no parse: brackets are counted outside strings. Invalid JSON is
    scanned as well as it can be; the parser refuses it afterwards anyway."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False  # fewer brackets than the limit: the common case costs two counts
    encoding = json.detect_encoding(body)
    if encoding != "utf-8":
        # UTF-16 or UTF-32 (which json.loads accepts), or a BOM: scan the same text as UTF-8.
        try:
            body = body.decode(encoding).encode("utf-8", "surrogatepass")
        except UnicodeError:
            return False  # not decodable: the parser refuses it before it can nest anything
    depth = 0
    for match in _JSON_TOKENS.finditer(body):
        first = body[match.start()]
        if first in _OPEN:
            depth += 1
            if depth > max_depth:
                return True
        elif first != 0x22:  # a closing bracket
            depth -= 1
    return False


class RequestLimits:
    """The ASGI middleware: see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_json_depth: int,
        max_header_bytes: int,
        declared: Sequence[tuple[Route, int]] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.max_header_bytes = max_header_bytes
        self._declared = list(declared)  # from declared_limits(): routes with a limit of their own

    def _limit_for(self, scope: Scope) -> int:
        for route, limit in self._declared:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        content_length: bytes | None = None
        chunked = False
        content_type = b""
        encoded = False
        for name, value in scope["headers"]:
            head += len(name) + len(value) + 4
            if name == b"content-length":
                content_length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type":
                content_type = value
            elif name == b"content-encoding":
                # A compressed body's bytes say nothing of its nesting: the route that
                # decompresses it (intake's tracking API) checks the result itself.
                encoded = value.strip().lower() not in (b"", b"identity")
        if head > self.max_header_bytes:
            await _refuse(
                send, scope, 431, "headers", f"request line and headers larger than {self.max_header_bytes} bytes"
            )
            return
        if content_length is None and not chunked:
            await self.app(scope, receive, send)  # no body
            return
        limit = self._limit_for(scope)
        declared = _int(content_length)
        if content_length is not None and declared is None:
            await _refuse(send, scope, 400, "content_length", "Content-Length is not a number")
            return
        if declared is not None and declared > limit:
            await _refuse(send, scope, 413, "body", f"request body larger than {limit} bytes", close=True)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _refuse(send, scope, 413, "body", f"request body larger than {limit} bytes", close=True)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        media_type = content_type.split(b";", 1)[0].strip().lower()
        if media_type not in _FORM_TYPES and not encoded and json_too_deep(body, self.max_json_depth):
            await _refuse(
                send,
                scope,
                422,
                "json_depth",
                [
                    {
                        "loc": ["body"],
                        "msg": f"JSON nested deeper than {self.max_json_depth} levels",
                        "type": "json_too_deep",
                    }
                ],
            )
            return
        await self.app(scope, _replay(body, receive), send)


def _int(value: bytes | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read so far in one message, then waits as the server's does."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, scope: Scope, status: int, reason: str, detail: Any, *, close: bool = False) -> None:
    REFUSED.labels(reason).inc()
    log.warning("request_refused", status=status, reason=reason, method=scope.get("method"), path=scope.get("path"))
    content = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    if close:
        # The rest of the body is never read: the connection cannot carry another request.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


# ---------------------------------------------------------------- the server's header limit


def http_protocol(max_header_bytes: int) -> type[asyncio.Protocol] | str:
    """The uvicorn HTTP protocol to serve with: httptools (fast, but llhttp puts no bound on
    the request line and headers) with a bound of ``max_header_bytes``; h11 if httptools is
    not installed, bounded by ``h11_max_incomplete_event_size``."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] installs httptools
        return "h11"

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """Counts the bytes of each request's head as they arrive and answers 431 past the
        bound, instead of buffering whatever the client sends until the headers end."""

        _in_head = True
        _head_bytes = 0

        def data_received(self, data: bytes) -> None:
            while data:
                if self._in_head:
                    room = max_header_bytes - self._head_bytes
                    if room <= 0:
                        self._refuse_head()
                        return
                    piece, data = data[:room], data[room:]
                    self._head_bytes += len(piece)
                else:
                    piece, data = data, b""
                super().data_received(piece)
                if self.transport.is_closing():
                    return

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head = True
            self._head_bytes = 0

        def _refuse_head(self) -> None:
            REFUSED.labels("headers").inc()
            content = json.dumps({"detail": f"request line and headers larger than {max_header_bytes} bytes"}).encode()
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                    b"content-type: application/json\r\n"
                    b"content-length: " + str(len(content)).encode() + b"\r\n"
                    b"connection: close\r\n\r\n" + content
                )
            self.transport.close()

    return BoundedHttpToolsProtocol
