"""What the OpenAPI document promises, checked in-process: statuses, error bodies, typed parameters, body limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from leadrelay.settings import Settings
from tests.harness import Harness, example_rules, running, settings_for

SINCE_ROUTES = ["/v1/alerts", "/v1/review-board", "/v1/metrics/funnel", "/v1/metrics/sla"]
TERRITORY_ROUTES = ["/v1/alerts", "/v1/me/leads", "/v1/metrics/funnel", "/v1/metrics/sla"]


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running(settings_for(tmp_path, max_body_bytes=4096)) as harness:
        yield harness


@pytest.fixture
async def document(h: Harness) -> dict[str, Any]:
    r = await h.client.get("/openapi.json")
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


@pytest.fixture(params=["sqlite", "postgres"])
def on_both(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return settings_for(tmp_path)
    url = request.getfixturevalue("pg_url")
    return settings_for(tmp_path, database_url=url, schema_prefix=request.getfixturevalue("pg_schema_cleanup"))


async def test_since_is_an_iso_datetime_with_a_timezone(on_both: Settings) -> None:
    refused = ["0.5", "1700000000", "-1", "1e5", "yesterday", "2026-05-01T00:00:00", "2026-05-01", "2026-13-01T00:00Z"]
    # Also the two that lie outside what UTC can hold (year 1 east of Greenwich, 9999 west of it).
    answered = [
        "2026-05-01T00:00:00Z",
        "2026-05-01T02:00:00+02:00",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:00-05:00",
    ]
    async with running(on_both) as h:
        for route in SINCE_ROUTES:
            for since in refused:
                r = await h.client.get(route, params={"since": since})
                assert r.status_code == 422, (route, since, r.text)
                (error,) = r.json()["detail"]
                assert error["loc"] == ["query", "since"]
            for since in answered:
                r = await h.client.get(route, params={"since": since})
                assert r.status_code == 200, (route, since, r.text)


async def test_an_event_time_outside_the_utc_range_is_refused_at_the_door(h: Harness) -> None:
    r = await h.client.post(
        "/v1/events",
        json={"type": "page_viewed", "email": "a@b-test.se", "occurred_at": "0001-01-01T00:00:00+01:00"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "occurred_at"]


async def test_a_body_over_the_limit_is_a_413(h: Harness) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b"a" * 1000

    for path, content_type in [
        ("/v1/forms/newsletter/submissions", "application/json"),
        ("/v1/forms/newsletter/submissions", "application/x-www-form-urlencoded"),
        ("/v1/events", "application/json"),
        ("/v1/leads/0b3f3c64-5d7e-5c4e-8a55-3b7f2c9d0a11/touches", "application/json"),
    ]:
        big = b'{"email": "' + b"a" * 5000 + b'"}'
        r = await h.client.post(path, content=big, headers={"content-type": content_type})
        assert r.status_code == 413, (path, r.text)
        assert "4096" in r.json()["detail"]
        r = await h.client.post(path, content=chunks(), headers={"content-type": content_type})
        assert r.status_code == 413, (path, r.text)


async def test_a_body_under_the_limit_is_read(h: Harness) -> None:
    r = await h.client.post("/v1/forms/newsletter/submissions", json={"email": "a@b-test.se", "note": "x" * 900})
    assert r.status_code == 202, r.text


async def test_a_form_value_is_at_most_1000_characters_as_sent(h: Harness) -> None:
    # The document's maxLength counts what is sent, surrounding spaces included.
    for value, code in [("x" * 1000, 202), (" " + "x" * 999, 202), (" " + "x" * 1000, 422), ("x" * 1000 + "\n", 422)]:
        r = await h.client.post("/v1/forms/newsletter/submissions", json={"email": "a@b-test.se", "note": value})
        assert r.status_code == code, (len(value), r.text)


async def test_every_operation_documents_the_statuses_it_can_answer(document: dict[str, Any]) -> None:
    # /v1/me is the shared app's: who the caller is needs no database, so it never answers 503.
    stateless = {"/v1/forms", "/livez", "/readyz", "/metrics", "/asyncapi.json", "/v1/me"}
    # The website's scripts and snippet are rendered from the rules: no database, no broker.
    stateless |= {"/v1/forms/{form_id}/embed.js", "/v1/forms/{form_id}/embed", "/v1/track.js"}
    for path, method, op in operations(document):
        responses = op["responses"]
        where = {p["in"] for p in op.get("parameters", [])}
        if where or "requestBody" in op:
            assert responses["422"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/FieldErrors"
            }, (method, path)
        if "path" in where:
            assert "404" in responses, (method, path)
        if "requestBody" in op:
            assert {"400", "413"} <= set(responses), (method, path)
        if path not in stateless:
            assert responses["503"]["headers"]["Retry-After"]["required"] is True, (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "503" in document["paths"]["/readyz"]["get"]["responses"]


async def test_error_bodies_are_as_documented(h: Harness, document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    r = await h.client.get("/v1/leads?limit=0")
    assert r.status_code == 422
    assert set(r.json()) == set(schemas["FieldErrors"]["properties"])
    assert all(set(e) == set(schemas["FieldError"]["properties"]) for e in r.json()["detail"])
    r = await h.client.get("/v1/leads/0b3f3c64-5d7e-5c4e-8a55-3b7f2c9d0a11/score")
    assert r.status_code == 404
    assert set(r.json()) == set(schemas["Error"]["properties"])


async def test_raw_bodies_are_described(document: dict[str, Any]) -> None:
    form = document["paths"]["/v1/forms/{form_id}/submissions"]["post"]
    content = form["requestBody"]["content"]
    assert set(content) == {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}
    for schema in content.values():
        assert schema["schema"]["required"] == ["email"]
        assert "additionalProperties" in schema["schema"]
    assert "415" in form["responses"]
    (form_id,) = [p for p in form["parameters"] if p["name"] == "form_id"]
    assert form_id["schema"]["enum"] == [f.id for f in example_rules().forms]

    event = document["paths"]["/v1/events"]["post"]
    schema = event["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["type"]
    assert schema["properties"]["occurred_at"]["anyOf"][0]["format"] == "date-time"
    assert "415" in event["responses"]


async def test_values_from_the_rules_are_enums(document: dict[str, Any]) -> None:
    reps = sorted(r.id for t in example_rules().territories for r in t.reps)
    for model in ("TouchIn", "DispositionIn"):
        rep_id = document["components"]["schemas"][model]["properties"]["rep_id"]
        # Optional (the caller's own rep by default): a rep of the rules, or null.
        assert [v["enum"] for v in rep_id["anyOf"] if "enum" in v] == [reps]
    territories = [t.id for t in example_rules().territories]
    for route in TERRITORY_ROUTES:
        (territory,) = [p for p in document["paths"][route]["get"]["parameters"] if p["name"] == "territory"]
        assert [v["enum"] for v in territory["schema"]["anyOf"] if "enum" in v] == [territories], route
    assert "x-leadrelay-rules" not in str(document)


async def test_every_since_parameter_is_typed_alike(document: dict[str, Any]) -> None:
    for route in SINCE_ROUTES:
        (since,) = [p for p in document["paths"][route]["get"]["parameters"] if p["name"] == "since"]
        assert since["schema"]["anyOf"][0]["format"] == "date-time", route
