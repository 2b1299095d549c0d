"""The AsyncAPI 3.0 document of Leadrelay's topics, generated from the event models.

One channel per topic (dead-letter topics included) with its Kafka binding
(partitions), one message per versioned event type (payload JSON Schema from
the pydantic model, the CloudEvents binary-mode ``ce_*`` headers, the record
key = the lead id), and the operations: which service sends to each channel
and which consumer groups receive from it. ``leadrelay asyncapi`` writes it to
``leadrelay/asyncapi.json`` (a test fails when that file is stale) and every
service serves it at ``GET /asyncapi.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from leadrelay import __version__
from leadrelay.events import (
    CONTENT_TYPE,
    DLQ_PARTITIONS,
    EVENT_TYPES,
    LEADS_ASSIGNED,
    LEADS_FEEDBACK,
    LEADS_INTAKE,
    LEADS_SCORED,
    SLA_ALERTS,
    SPECVERSION,
    TOPIC_PARTITIONS,
    Event,
    dlq_topic,
)

DOCUMENT = Path(__file__).parent / "asyncapi.json"
KAFKA_BINDING = "0.5.0"

# The one service that writes each topic (its events' CloudEvents source is /leadrelay/<service>).
PRODUCERS: dict[str, str] = {
    LEADS_INTAKE: "intake",
    LEADS_SCORED: "scoring",
    LEADS_ASSIGNED: "routing",
    LEADS_FEEDBACK: "feedback",
    SLA_ALERTS: "sla-monitor",
}

TOPIC_DESCRIPTIONS: dict[str, str] = {
    LEADS_INTAKE: "Form submissions and behaviour events as intake accepted them.",
    LEADS_SCORED: "Score changes, and leads that became marketing-qualified or raised their hand.",
    LEADS_ASSIGNED: "Qualified leads handed to a rep, with everything the rep needs.",
    LEADS_FEEDBACK: "What sales did: touches and dispositions.",
    SLA_ALERTS: "Follow-up deadlines that passed: the feed ops acts on.",
}

# The headers a consumer adds when it dead-letters a record (leadrelay.worker).
DLQ_HEADERS: dict[str, str] = {
    "dlq_error": "why the record can never be processed (at most 4000 characters)",
    "dlq_group": "the consumer group that gave up on it",
    "dlq_topic": "the topic it came from",
    "dlq_partition": "its partition there",
    "dlq_offset": "its offset there",
}


def source_of(service: str) -> str:
    """The CloudEvents ``source`` of the events a service emits."""
    return f"/leadrelay/{service}"


def _message_id(event_type: str) -> str:
    return event_type


def _channel_id(topic: str) -> str:
    return topic


def _cloudevents_headers() -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            "CloudEvents 1.0 attributes in binary content mode: one Kafka header each (UTF-8), the payload is the"
            " record value."
        ),
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type"],
        "properties": {
            "ce_specversion": {"type": "string", "const": SPECVERSION},
            "ce_id": {
                "type": "string",
                "minLength": 1,
                "description": "the event id; every consumer's inbox drops a second delivery of the same id",
            },
            "ce_source": {"type": "string", "description": "/leadrelay/<service> of the producer"},
            "ce_type": {"type": "string", "description": "the versioned event type; names the payload schema"},
            "ce_time": {"type": "string", "format": "date-time", "description": "when the event was produced"},
            "ce_subject": {"type": "string", "description": "the lead id (also the record key)"},
            "content-type": {"type": "string", "const": CONTENT_TYPE},
        },
    }


def _lift(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """Move ``$defs`` into ``components.schemas`` (a ``#/$defs`` reference would point at the document root)."""
    schemas.update(schema.pop("$defs", {}))
    return schema


def _payload_schema(model: type[Event], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = _lift(model.model_json_schema(ref_template="#/components/schemas/{model}"), schemas)
    schema["description"] = (model.__doc__ or "").strip() or f"The payload of {model.TYPE}."
    return schema


def _key() -> dict[str, Any]:
    return {
        "type": "string",
        "format": "uuid",
        "description": "the lead id: every event of a lead lands in one partition, in order",
    }


def generate(consumers: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The document; ``consumers`` maps each topic to the consumer groups (= services) that read it."""
    schemas: dict[str, Any] = {"CloudEventsHeaders": _cloudevents_headers()}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    for type_, model in sorted(EVENT_TYPES.items()):
        name = model.__name__
        schemas[name] = _payload_schema(model, schemas)
        producer = PRODUCERS[model.TOPIC]
        messages[_message_id(type_)] = {
            "name": type_,
            "title": name,
            "summary": f"{type_} on {model.TOPIC}",
            "contentType": CONTENT_TYPE,
            "headers": {
                "allOf": [
                    {"$ref": "#/components/schemas/CloudEventsHeaders"},
                    {
                        "type": "object",
                        "properties": {
                            "ce_type": {"type": "string", "const": type_},
                            "ce_source": {"type": "string", "const": source_of(producer)},
                        },
                    },
                ]
            },
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "correlationId": {"description": "the lead id", "location": "$message.header#/ce_subject"},
            "bindings": {"kafka": {"key": _key(), "bindingVersion": KAFKA_BINDING}},
        }

    dlq_properties: dict[str, Any] = {name: {"type": "string", "description": t} for name, t in DLQ_HEADERS.items()}
    for number in ("dlq_partition", "dlq_offset"):
        dlq_properties[number]["pattern"] = "^-?[0-9]+$"
    schemas["DeadLetterHeaders"] = {
        "type": "object",
        "description": "the original record's headers (CloudEvents ce_* when it had them), plus why it was given up",
        "required": list(DLQ_HEADERS),
        "properties": dlq_properties,
    }

    for topic, partitions in TOPIC_PARTITIONS.items():
        types = sorted(t for t, m in EVENT_TYPES.items() if topic == m.TOPIC)
        cid = _channel_id(topic)
        channels[cid] = {
            "address": topic,
            "title": topic,
            "description": TOPIC_DESCRIPTIONS[topic],
            "messages": {t: {"$ref": f"#/components/messages/{_message_id(t)}"} for t in types},
            "bindings": {"kafka": {"topic": topic, "partitions": partitions, "bindingVersion": KAFKA_BINDING}},
        }
        refs = [{"$ref": f"#/channels/{cid}/messages/{t}"} for t in types]
        producer = PRODUCERS[topic]
        operations[f"{producer}.send.{topic}"] = {
            "action": "send",
            "title": f"{producer} publishes to {topic}",
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": refs,
        }
        groups = sorted(consumers.get(topic, ()))
        for group in groups:
            operations[f"{group}.receive.{topic}"] = {
                "action": "receive",
                "title": f"{group} consumes {topic}",
                "channel": {"$ref": f"#/channels/{cid}"},
                "messages": refs,
                "bindings": {
                    "kafka": {"groupId": {"type": "string", "enum": [group]}, "bindingVersion": KAFKA_BINDING}
                },
            }

        dlq = dlq_topic(topic)
        did = _channel_id(dlq)
        dead_letter = f"{topic}.dead_letter"
        messages[dead_letter] = {
            "name": dead_letter,
            "title": f"A record of {topic} that can never be processed",
            "summary": "the original key, value and headers, unchanged, plus dlq_* headers",
            "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
            "payload": {"description": f"the original record value, as it was on {topic} (it may not parse)"},
            "bindings": {"kafka": {"key": _key(), "bindingVersion": KAFKA_BINDING}},
        }
        channels[did] = {
            "address": dlq,
            "title": dlq,
            "description": (
                f"Dead letters of {topic}: records its consumers can never process, for people to inspect and replay."
            ),
            "messages": {dead_letter: {"$ref": f"#/components/messages/{dead_letter}"}},
            "bindings": {"kafka": {"topic": dlq, "partitions": DLQ_PARTITIONS, "bindingVersion": KAFKA_BINDING}},
        }
        for group in groups:
            operations[f"{group}.send.{dlq}"] = {
                "action": "send",
                "title": f"{group} dead-letters what it can never process from {topic}",
                "channel": {"$ref": f"#/channels/{did}"},
                "messages": [{"$ref": f"#/channels/{did}/messages/{dead_letter}"}],
            }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Leadrelay events",
            "version": __version__,
            "description": (
                "The topics Leadrelay's services talk through. Every record's key is the lead id; CloudEvents 1.0"
                " attributes travel as ce_* headers (binary content mode) and the value is the JSON payload. Topic and"
                " consumer group names carry LEADRELAY_KAFKA_PREFIX when it is set."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "the brokers of LEADRELAY_KAFKA_BOOTSTRAP_SERVERS",
                "variables": {"bootstrap": {"default": "127.0.0.1:9092"}},
            }
        },
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {"schemas": dict(sorted(schemas.items())), "messages": dict(sorted(messages.items()))},
    }


def installed_consumers() -> dict[str, list[str]]:
    """Each topic's consumer groups, from the installed services' subscriptions."""
    from leadrelay.runtime import load_services

    out: dict[str, list[str]] = {}
    for svc in load_services():
        for sub in svc.subscriptions:
            for topic in sub.topics:
                out.setdefault(topic, []).append(sub.group)
    return out


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def write(check: bool = False, path: Path = DOCUMENT) -> bool:
    """Write the document (or only compare); True when the stored file was up to date."""
    text = render(generate(installed_consumers()))
    fresh = path.exists() and path.read_text() == text
    if not fresh and not check:
        path.write_text(text)
    return fresh


@cache
def stored_document() -> dict[str, Any]:
    """The document as shipped with the package (what ``GET /asyncapi.json`` serves)."""
    return json.loads(DOCUMENT.read_text())  # type: ignore[no-any-return]
