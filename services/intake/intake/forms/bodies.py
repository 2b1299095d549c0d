"""Reading the body of a post that carries a form: a form as a plain HTML form posts it (urlencoded or
multipart), or a JSON object of fields; a 415 or a 422 naming what is wrong."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from leadrelay.http import field_errors
from leadrelay.inputs import parse_urlencoded


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


async def read_json(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        raise HTTPException(415, f"expected application/json, got {ctype}")
    try:
        return await request.json()
    except ValueError as exc:
        raise field_errors([{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}]) from None


async def read_fields(request: Request, max_fields: int) -> dict[str, Any]:
    """A JSON object of fields, or a form as a plain HTML form posts it; at most ``max_fields`` of them."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return await read_form(request, max_fields)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise field_errors([{"loc": ["body"], "msg": "expected a JSON object of fields", "type": "type_error"}])
    if len(body) > max_fields:
        raise field_errors([{"loc": ["body"], "msg": f"more than {max_fields} fields", "type": "too_long"}])
    return body
