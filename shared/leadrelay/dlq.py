"""Dead letters: list them with their errors, and put them back on their topic after a fix.

A consumer dead-letters only records that can never succeed as they are
(undecodable, or invalid for the event's own model). After the fix (a consumer
that knows a new event type, a producer that stops writing bad records and a
corrected copy of them), ``leadrelay dlq replay TOPIC`` publishes them again to
the topic they came from, with their original key and headers. Replaying is
safe to repeat: every consumer's inbox drops an event id it has handled, so a
replay never doubles anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from leadrelay.bus import Bus
from leadrelay.events import Record, dlq_topic

DLQ_HEADERS = ("dlq_error", "dlq_group", "dlq_topic", "dlq_partition", "dlq_offset", "dlq_time")


@dataclass(frozen=True)
class DeadLetter:
    offset: int  # on the dead-letter topic
    event_id: str | None
    type: str | None
    key: str | None
    error: str | None
    group: str | None
    topic: str  # where it came from
    partition: int | None
    source_offset: int | None
    dead_lettered_at: str | None
    record: Record

    def as_dict(self) -> dict[str, object]:
        return {
            "offset": self.offset,
            "event_id": self.event_id,
            "type": self.type,
            "key": self.key,
            "error": self.error,
            "group": self.group,
            "topic": self.topic,
            "partition": self.partition,
            "source_offset": self.source_offset,
            "dead_lettered_at": self.dead_lettered_at,
        }


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


async def list_dead_letters(bus: Bus, topic: str) -> list[DeadLetter]:
    """Every record on ``<topic>.dlq``, oldest first."""
    out = []
    for rec in await bus.read_topic(dlq_topic(topic)):
        out.append(
            DeadLetter(
                offset=rec.offset,
                event_id=rec.header("ce_id"),
                type=rec.header("ce_type"),
                key=rec.key.decode("utf-8", errors="replace") if rec.key is not None else None,
                error=rec.header("dlq_error"),
                group=rec.header("dlq_group"),
                topic=rec.header("dlq_topic") or topic,
                partition=_int(rec.header("dlq_partition")),
                source_offset=_int(rec.header("dlq_offset")),
                dead_lettered_at=rec.header("dlq_time"),
                record=rec,
            )
        )
    return out


def original(letter: DeadLetter) -> Record:
    """The record as it was before it was dead-lettered."""
    rec = letter.record
    return Record(
        topic=letter.topic,
        key=rec.key,
        value=rec.value,
        headers=tuple((k, v) for k, v in rec.headers if k not in DLQ_HEADERS),
    )


async def replay(bus: Bus, topic: str, event_ids: Iterable[str] = ()) -> list[DeadLetter]:
    """Publish the dead letters of ``topic`` (all, or those with the given event ids) back to
    the topic they came from, in their order; returns what was replayed."""
    wanted = set(event_ids)
    letters = [d for d in await list_dead_letters(bus, topic) if not wanted or d.event_id in wanted]
    missing = wanted - {d.event_id for d in letters}
    if missing:
        raise LookupError(f"no dead letter with event id {', '.join(sorted(missing))} on {dlq_topic(topic)}")
    if letters:
        await bus.publish([original(d) for d in letters])
    return letters
