"""The HTTP contract every service shares.

- Parameter types whose JSON Schema says exactly what the server accepts
  (``Since``, ``AwareDateTime``, ``RepId``, ``TerritoryId``, ``FormId``).
- The error bodies as the app answers them (``{"detail": ...}``).
- :func:`install`: after the routers are included, every operation of the
  OpenAPI document gets the statuses every route of its kind can answer: 422
  where it takes parameters or a body, 404 where it has a path id, 400 and 413
  where it reads a body (415 where it reads the raw body: :func:`request_body`),
  503 (with ``Retry-After``) where it touches a database or the broker. Values
  that come from the rules file (rep, territory and form ids) are listed as enums.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Path
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, WithJsonSchema

from leadrelay.inputs import Text
from leadrelay.rules import Rules

# ---------------------------------------------------------------- parameter types

_DATETIME_EXAMPLE = "2026-05-01T00:00:00Z"
# pydantic reads a number (or a string of digits) as a Unix timestamp: "since=0.5" would be 1970.
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def _iso_8601(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError(f"expected an ISO 8601 date and time with a timezone, e.g. {_DATETIME_EXAMPLE}")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"needs a timezone, e.g. {_DATETIME_EXAMPLE}")
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range: before 0001-01-01T00:00:00Z or after 9999-12-31T23:59:59Z") from None
    return value


def _lower_bound(value: datetime) -> datetime:
    """In UTC; a bound before the first instant Python can hold is the beginning of time."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"needs a timezone, e.g. {_DATETIME_EXAMPLE}")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # Only year 1 with a positive offset or year 9999 with a negative one gets here.
        return datetime.min.replace(tzinfo=UTC) if value.year == 1 else datetime.max.replace(tzinfo=UTC)


_DATETIME_SCHEMA = {"type": "string", "format": "date-time", "examples": [_DATETIME_EXAMPLE]}

AwareDateTime = Annotated[
    datetime,
    BeforeValidator(_iso_8601),
    AfterValidator(_aware),
    WithJsonSchema({**_DATETIME_SCHEMA, "description": "ISO 8601 (RFC 3339) date and time with a timezone"}),
]
"""A date and time with a timezone (ISO 8601); numbers and naive times are a 422."""

Since = Annotated[
    datetime,
    BeforeValidator(_iso_8601),
    AfterValidator(_lower_bound),
    WithJsonSchema({**_DATETIME_SCHEMA, "description": "ISO 8601 (RFC 3339) date and time with a timezone"}),
]
"""A lower time bound of a query (``since``): ISO 8601 with a timezone, in UTC once parsed."""

# Marks a schema whose allowed values come from the rules file; :func:`install` replaces it with an enum.
RULES_VALUES = "x-leadrelay-rules"

RepId = Annotated[Text, Field(min_length=1, max_length=100, json_schema_extra={RULES_VALUES: "reps"})]
"""A rep id: one of the reps in the rules file (an unknown rep is a 422)."""

TerritoryId = Annotated[Text, Field(min_length=1, max_length=100, json_schema_extra={RULES_VALUES: "territories"})]
"""A territory id: one of the territories in the rules file (an unknown one is a 422, see
:meth:`leadrelay.auth.Principal.check_territory`)."""

FormId = Annotated[str, Path(description="a form of the rules file", json_schema_extra={RULES_VALUES: "forms"})]
"""A form id in a path: one of the forms in the rules file (an unknown form is a 404)."""


def _rules_values(rules: Rules | None) -> dict[str, list[str]]:
    if rules is None:
        return {"reps": [], "forms": [], "territories": []}
    return {
        "reps": sorted(r.id for t in rules.territories for r in t.reps),
        "territories": [t.id for t in rules.territories],
        "forms": [f.id for f in rules.forms],
    }


# ---------------------------------------------------------------- error bodies


class Error(BaseModel):
    """What went wrong, in words."""

    detail: str


class DependencyDown(BaseModel):
    """A dependency cannot take the request now: which one, and when to retry (``Retry-After``)."""

    detail: str
    dependency: str = Field(
        description=(
            "what cannot be reached: postgresql, sqlite or kafka; kafka,postgresql when intake can reach"
            " neither the broker nor its spool"
        )
    )


class FieldError(BaseModel):
    loc: list[str | int] = Field(description='where: ["body", "email"], ["query", "since"], ...')
    msg: str
    type: str


class FieldErrors(BaseModel):
    """Every field error of the request at once."""

    detail: list[FieldError]


class Readiness(BaseModel):
    status: str = Field(description="ok or unavailable")
    checks: dict[str, str] = Field(description="each dependency and consumer: ok, or what is wrong")


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds after which the request may be retried",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}

_RESPONSES: dict[str, dict[str, Any]] = {
    "400": {"description": "The body cannot be parsed (e.g. not UTF-8, or a broken multipart body)."},
    "401": {"description": "No valid credential (a bearer token or a source's API key); see WWW-Authenticate."},
    "403": {"description": "The caller may not do this, or not on this lead: says what."},
    "404": {"description": "Not found: says what."},
    "413": {"description": "The body is larger than the server accepts."},
    "415": {"description": "The body's content type is not one the operation reads."},
    "422": {"description": "Field errors: every one of them, with where (`loc`) and what (`msg`)."},
    "503": {"description": "A dependency (database, broker) cannot take the request now; retry after a while."},
}


def _response(status: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": _RESPONSES[status]["description"]}
    out["content"] = _json(FieldErrors if status == "422" else DependencyDown if status == "503" else Error)
    if status == "503":
        out["headers"] = RETRY_AFTER
    if status == "401":
        out["headers"] = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
    return out


# ---------------------------------------------------------------- the document


def install(
    app: FastAPI,
    rules: Rules | None,
    storage: Collection[tuple[str, str]],
    authenticated: Callable[[], Collection[tuple[str, str]]] = lambda: (),
) -> None:
    """Make ``app``'s OpenAPI document exact.

    ``storage`` holds the (path, METHOD) of every operation that touches a database or the broker;
    ``authenticated`` gives those that need a credential (401 without one, 403 for the wrong one),
    asked when the document is first built, once every route exists.
    """
    generate = app.openapi
    done: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = generate()
        if not done or done[0] is not schema:
            _complete(schema, rules, storage, set(authenticated()))
            done[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(
    schema: dict[str, Any],
    rules: Rules | None,
    storage: Collection[tuple[str, str]],
    authenticated: Collection[tuple[str, str]] = (),
) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (Error, FieldErrors, DependencyDown):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(generated.pop("$defs", {}))
        components[model.__name__] = generated
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = {p.get("in") for p in operation.get("parameters", [])}
            body = "requestBody" in operation
            statuses = set()
            if where or body:
                statuses.add("422")
            if "path" in where:
                statuses.add("404")
            if body:
                statuses.update(("400", "413"))
            if (path, method.upper()) in storage:
                statuses.add("503")
            if (path, method.upper()) in authenticated:
                statuses.update(("401", "403"))
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                documented = responses.get(status)
                # FastAPI's own 422 describes its default body, not the one this app answers.
                if documented is None or _refers_to(documented, "HTTPValidationError"):
                    responses[status] = _response(status)
            operation["responses"] = dict(sorted(responses.items()))
    if not _refers_to(schema["paths"], "HTTPValidationError"):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
    _replace_rules_values(schema, _rules_values(rules))


def _refers_to(node: Any, name: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == f"#/components/schemas/{name}" or any(_refers_to(v, name) for v in node.values())
    if isinstance(node, list):
        return any(_refers_to(v, name) for v in node)
    return False


def _replace_rules_values(node: Any, values: dict[str, list[str]]) -> None:
    if isinstance(node, dict):
        kind = node.pop(RULES_VALUES, None)
        if kind is not None:
            node["enum"] = values[kind]
            node["type"] = "string"
            for keyword in ("minLength", "maxLength", "pattern"):
                node.pop(keyword, None)
        for value in node.values():
            _replace_rules_values(value, values)
    elif isinstance(node, list):
        for value in node:
            _replace_rules_values(value, values)


def request_body(content: dict[str, dict[str, Any]], description: str) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body itself: the media types it reads, each with its schema.

    Such a route answers 415 for any other content type (one with a typed body answers 422).
    """
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {media: {"schema": schema} for media, schema in content.items()},
        },
        "responses": {"415": _response("415")},
    }


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with its ``$defs`` inlined, to embed in an operation."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(defs[ref.removeprefix("#/$defs/")]), **resolve(rest)}
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)  # type: ignore[no-any-return]
