"""leadrelay.limits: body size, JSON depth and header limits, before anything parses the request."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from starlette.types import Message

from leadrelay.limits import RequestLimits, body_limit, declared_limits, json_too_deep

# ------------------------------------------------------------ the depth scan


def nested(depth: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * depth + close * depth).encode()


def deep_object(depth: int) -> bytes:
    return ('{"a":' * depth + "1" + "}" * depth).encode()


@pytest.mark.parametrize(
    ("body", "deep"),
    [
        (b'{"email": "a@b.se"}', False),
        (nested(32), False),
        (nested(33), True),
        (deep_object(32), False),
        (deep_object(33), True),
        (b'{"a": [' + b"[" * 30 + b"]" * 30 + b"]}", False),  # 32 levels
        (b'{"a": "' + b"[" * 5000 + b'"}', False),  # brackets inside a string are text
        (b'{"a": "\\"' + b"{" * 5000 + b'\\\\"}', False),  # escaped quotes do not end the string
        (b'["\\\\", ' + nested(31) + b"]", False),  # an escaped backslash before the closing quote
        (b"[" * 40, True),  # unclosed: still too deep
        (b"[]" * 5000, False),  # many brackets, never deep
        (nested(100_000), True),
        (b"", False),
        (b"\xff\xfe\x00", False),  # not decodable: the parser refuses it
    ],
)
def test_json_too_deep(body: bytes, deep: bool) -> None:
    assert json_too_deep(body, 32) is deep


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_json_too_deep_in_every_encoding_json_loads_accepts(encoding: str) -> None:
    # U+2200 puts one quote byte (0x22) inside a UTF-16 code unit: read as bytes, the strings
    # after it would look like structure, and their brackets like nesting.
    shallow = json.dumps({"a": "\u2200", "b": "[" * 40, "c": "\u5b5b\u7b7b" * 50}, ensure_ascii=False)
    assert json.loads(shallow.encode(encoding))  # what the services' parser accepts
    assert not json_too_deep(shallow.encode(encoding), 32)
    deep = "[" * 33 + '"\u2222"' + "]" * 33
    assert json_too_deep(deep.encode(encoding), 32)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=60,
)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@given(json_values, st.integers(1, 12), st.booleans())
def test_json_too_deep_agrees_with_the_parsed_depth(value: Any, limit: int, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert json_too_deep(body, limit) is (depth_of(value) > limit)


# ------------------------------------------------------------ the middleware

LIMIT = 64 * 1024


class Touch(BaseModel):
    note: str


def app_with_limits(**overrides: Any) -> FastAPI:
    app = FastAPI()
    router = APIRouter()

    @router.post("/raw")
    async def raw(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {"bytes": len(body), "json": (await request.json()) if body.startswith(b"{") else None}

    @router.post("/form")
    async def form(request: Request) -> dict[str, Any]:
        return {"fields": len(await request.form())}

    @router.post("/model")
    async def model(body: Touch) -> dict[str, Any]:
        return {"note": len(body.note)}

    @router.post("/batch", openapi_extra=body_limit(500_000))
    async def batch(request: Request) -> dict[str, Any]:
        return {"bytes": len(await request.body())}

    @router.post("/items/{item_id}/tiny", openapi_extra=body_limit(100))
    async def tiny(item_id: int, request: Request) -> dict[str, Any]:
        return {"bytes": len(await request.body())}

    app.include_router(router)
    options: dict[str, Any] = {"max_body_bytes": LIMIT, "max_json_depth": 32, "max_header_bytes": 16 * 1024}
    options.update(overrides)
    app.add_middleware(RequestLimits, declared=declared_limits(router.routes), **options)
    return app


@pytest.fixture
async def client() -> Any:
    transport = httpx.ASGITransport(app=app_with_limits())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_bodies_within_the_limits_reach_the_routes(client: httpx.AsyncClient) -> None:
    r = await client.post("/raw", json={"a": [[["ok"]]]})
    assert r.status_code == 200 and r.json()["json"] == {"a": [[["ok"]]]}
    r = await client.post("/raw", content=b"x" * LIMIT)
    assert r.json() == {"bytes": LIMIT, "json": None}
    r = await client.post("/model", json={"note": "n" * 60_000})
    assert r.json() == {"note": 60_000}
    r = await client.post("/batch", content=b"x" * 400_000)
    assert r.json() == {"bytes": 400_000}
    # A form is not JSON: brackets in it are not nesting.
    r = await client.post(
        "/form", content=b"a=" + b"[" * 1000, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.json() == {"fields": 1}


@pytest.mark.parametrize(
    ("path", "size"),
    [("/raw", LIMIT + 1), ("/model", LIMIT + 1), ("/form", LIMIT + 1), ("/batch", 500_001), ("/items/7/tiny", 101)],
)
async def test_a_body_over_the_route_limit_is_413(client: httpx.AsyncClient, path: str, size: int) -> None:
    r = await client.post(path, content=b"x" * size)
    assert r.status_code == 413, r.text
    assert r.json() == {"detail": f"request body larger than {size - 1} bytes"}
    assert r.headers["connection"] == "close"


async def test_a_deep_json_body_is_422_on_every_route() -> None:
    transport = httpx.ASGITransport(app=app_with_limits(max_body_bytes=1_000_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        for path in ("/raw", "/model"):
            for body in (nested(100_000), deep_object(50_000), nested(33)):
                r = await c.post(path, content=body, headers={"content-type": "application/json"})
                assert r.status_code == 422, (path, r.text)
                assert r.json()["detail"] == [
                    {"loc": ["body"], "msg": "JSON nested deeper than 32 levels", "type": "json_too_deep"}
                ]
        # Without a content type FastAPI still parses JSON: checked as well.
        r = await c.post("/model", content=nested(100_000))
        assert r.status_code == 422


async def test_headers_over_the_limit_are_431(client: httpx.AsyncClient) -> None:
    r = await client.post("/raw", json={}, headers={"x-big": "a" * 17_000})
    assert r.status_code == 431
    assert "headers larger than 16384 bytes" in r.json()["detail"]
    r = await client.get("/raw?" + "q" * 17_000)
    assert r.status_code == 431


async def call(app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, int]:
    """Drive the middleware by hand: (status, how many times it asked for more body)."""
    asked = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal asked
        asked += 1
        if asked > len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[asked - 1], "more_body": asked < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/raw",
        "raw_path": b"/raw",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "server": ("t", 80),
        "client": ("c", 1),
    }
    await app(scope, receive, send)
    return sent[0]["status"], asked


async def test_413_without_reading_the_rest_of_the_body() -> None:
    app = app_with_limits()
    chunk = b"x" * 16 * 1024
    # Content-Length says 300 MB: refused before a single byte is read.
    status, asked = await call(app, [(b"content-length", b"314572800")], [chunk] * 20_000)
    assert (status, asked) == (413, 0)
    # Streamed (chunked) with no length: refused on the chunk that passes the limit.
    status, asked = await call(app, [(b"transfer-encoding", b"chunked")], [chunk] * 20_000)
    assert (status, asked) == (413, LIMIT // len(chunk) + 1)
    # A Content-Length that lies low is caught the same way.
    status, asked = await call(app, [(b"content-length", b"10")], [chunk] * 20_000)
    assert (status, asked) == (413, LIMIT // len(chunk) + 1)
    status, _ = await call(app, [(b"content-length", b"ten")], [b"{}"])
    assert status == 400


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    middleware = RequestLimits(inner, max_body_bytes=10, max_json_depth=2, max_header_bytes=10)
    await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]
