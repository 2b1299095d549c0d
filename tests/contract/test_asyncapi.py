"""The AsyncAPI document of the topics: current, well formed, and true of what the services put on the bus."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jsonschema_rs
import pytest

from leadrelay import asyncapi
from leadrelay.bus.memory import MemoryBus
from leadrelay.events import EVENT_TYPES, LEADS_INTAKE, Record, all_topics, dlq_topic
from tests.harness import SOURCE_KEYS, Harness, running, settings_for

DOC = asyncapi.stored_document()
COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9.\-_]+$")
POISON = b"poison"


def resolve(pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = DOC
    for part in pointer[2:].split("/"):
        node = node[unquote(part).replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def validator(schema: dict[str, Any]) -> jsonschema_rs.Draft202012Validator:
    """A validator of ``schema`` whose ``#/components/...`` references resolve in the document."""
    return jsonschema_rs.Draft202012Validator(
        {"allOf": [schema], "components": DOC["components"]}, validate_formats=True
    )


def test_the_stored_document_is_current() -> None:
    assert asyncapi.write(check=True), "shared/leadrelay/asyncapi.json is stale: run `make schemas`"


def test_the_document_is_well_formed_asyncapi_3() -> None:
    assert DOC["asyncapi"] == "3.0.0"
    assert DOC["info"]["title"] and DOC["info"]["version"]
    for ref in refs(DOC):
        resolve(ref)  # every reference points at something
    for kind in ("schemas", "messages"):
        for key in DOC["components"][kind]:
            assert COMPONENT_KEY.match(key), key
    for name, schema in DOC["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
    for cid, channel in DOC["channels"].items():
        assert channel["address"] and channel["messages"], cid
        assert channel["bindings"]["kafka"]["topic"] == channel["address"]
    for oid, op in DOC["operations"].items():
        assert op["action"] in ("send", "receive"), oid
        channel_ref = op["channel"]["$ref"]
        channel = resolve(channel_ref)
        for message in op["messages"]:
            # An operation's messages are messages of its own channel.
            assert message["$ref"].startswith(channel_ref + "/messages/"), (oid, message)
            assert resolve(message["$ref"]) in channel["messages"].values()


def test_every_topic_event_type_and_consumer_is_in_the_document() -> None:
    channels = {c["address"]: c for c in DOC["channels"].values()}
    assert set(channels) == set(all_topics())
    for topic, partitions in all_topics().items():
        assert channels[topic]["bindings"]["kafka"]["partitions"] == partitions
    for type_, model in EVENT_TYPES.items():
        message = resolve(channels[model.TOPIC]["messages"][type_]["$ref"])
        assert message["name"] == type_
        payload = resolve(message["payload"]["$ref"])
        assert set(payload["properties"]) == set(model.model_fields), type_
        assert set(payload["required"]) == {n for n, f in model.model_fields.items() if f.is_required()}
    receivers = {
        (op["channel"]["$ref"].removeprefix("#/channels/"), op["bindings"]["kafka"]["groupId"]["enum"][0])
        for op in DOC["operations"].values()
        if op["action"] == "receive"
    }
    subscribed = {(t, group) for t, groups in asyncapi.installed_consumers().items() for group in groups}
    assert receivers == subscribed
    senders = {
        op["channel"]["$ref"].removeprefix("#/channels/")
        for op in DOC["operations"].values()
        if op["action"] == "send" and not op["channel"]["$ref"].endswith(".dlq")
    }
    assert senders == {m.TOPIC for m in EVENT_TYPES.values()}


async def read_everything(bus: MemoryBus) -> list[Record]:
    consumer = bus.consumer("asyncapi-test", list(all_topics()))
    await consumer.start()
    try:
        records: list[Record] = []
        while batch := await consumer.getmany(max_records=1000, timeout_ms=50):
            records.extend(batch)
        return records
    finally:
        await consumer.stop()


def headers_of(record: Record) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


async def test_what_the_services_put_on_the_bus_matches_the_document(tmp_path: Path) -> None:
    """Every record of a lead's whole journey, and a dead letter, validated against its channel's message."""
    bus = MemoryBus()
    async with running(settings_for(tmp_path), bus=bus) as h:
        await journey(h)
        # A record no consumer can decode: scoring dead-letters it.
        await bus.publish([Record(topic=LEADS_INTAKE, key=POISON, value=b"{}", headers=(("ce_type", b"x"),))])
        await h.settle()
        records = await read_everything(bus)

    channels = {c["address"]: c for c in DOC["channels"].values()}
    seen_types = set()
    dead = []
    for record in records:
        if record.key == POISON and not record.topic.endswith(".dlq"):
            continue  # the test's own record, not one a service wrote
        channel = channels[record.topic]
        headers = headers_of(record)
        if record.topic.endswith(".dlq"):
            dead.append(record)
            (message_ref,) = channel["messages"].values()
        else:
            message_ref = channel["messages"][headers["ce_type"]]
            seen_types.add(headers["ce_type"])
            assert record.key is not None
            assert record.key.decode() == headers["ce_subject"]
            assert headers["ce_source"] == asyncapi.source_of(asyncapi.PRODUCERS[record.topic])
        message = resolve(message_ref["$ref"])
        errors = [e.message for e in validator(message["headers"]).iter_errors(headers)]
        assert not errors, (record.topic, headers, errors)
        if "$ref" in message["payload"]:
            errors = [e.message for e in validator(message["payload"]).iter_errors(json.loads(record.value))]
            assert not errors, (record.topic, record.value, errors)
    assert seen_types == set(EVENT_TYPES), f"not produced in the journey: {set(EVENT_TYPES) - seen_types}"
    assert [r.topic for r in dead] == [dlq_topic(LEADS_INTAKE)]


async def journey(h: Harness) -> None:
    """A lead through every topic: a visitor's page view and its identify (the tracking API), form,
    event, score, qualification, assignment, touch, disposition, alert."""
    tracking = {"X-API-Key": SOURCE_KEYS["website"]}
    visit = {"anonymousId": "v-1", "properties": {"url": "https://lund-test.se/pricing"}}
    r = await h.as_(None).post("/v1/page", json=visit, headers=tracking)
    assert r.status_code == 200, r.text
    who = {"userId": "eva.lund@lund-test.se", "anonymousId": "v-1", "traits": {"firstName": "Eva"}}
    r = await h.as_(None).post("/v1/identify", json=who, headers=tracking)
    assert r.status_code == 200, r.text
    r = await h.client.post(
        "/v1/forms/demo-request/submissions",
        json={"email": "eva.lund@lund-test.se", "country": "SE", "job_title": "CTO", "company_size": "300"},
    )
    assert r.status_code == 202, r.text
    lead = r.json()["lead_id"]
    r = await h.client.post("/v1/events", json={"type": "page_viewed", "lead_id": lead, "url": "/pricing"})
    assert r.status_code == 202, r.text
    assignment = await h.wait_for(f"/v1/leads/{lead}/assignment")
    await h.wait_for(f"/v1/leads/{lead}/sla")
    h.clock.advance(timedelta(minutes=61))  # the handraiser's first-touch deadline passes: an alert
    for _ in range(100):
        if (await h.client.get("/v1/alerts")).json():
            break
        await h.settle()
    else:
        pytest.fail("no SLA alert")
    rep = assignment["rep_id"]
    r = await h.client.post(f"/v1/leads/{lead}/touches", json={"rep_id": rep, "channel": "call"})
    assert r.status_code == 202, r.text
    r = await h.client.post(
        f"/v1/leads/{lead}/dispositions", json={"rep_id": rep, "disposition": "recycle", "reason": "no budget"}
    )
    assert r.status_code == 202, r.text
    await h.settle()


async def test_every_service_serves_the_document(tmp_path: Path) -> None:
    async with running(settings_for(tmp_path), services=["intake"]) as h:
        r = await h.client.get("/asyncapi.json")
        assert r.status_code == 200
        assert r.json() == DOC
