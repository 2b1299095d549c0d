"""leadrelay.events: the CloudEvents envelope, its records, the JSON Schemas, and the key partitioner."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

from leadrelay.bus import _murmur2, partition_for
from leadrelay.cli import write_schemas
from leadrelay.events import (
    CONTENT_TYPE,
    EVENT_TYPES,
    LEADS_ASSIGNED,
    LEADS_FEEDBACK,
    LEADS_INTAKE,
    LEADS_SCORED,
    SLA_ALERTS,
    ActivityRecorded,
    ActivitySummary,
    ActivityType,
    Channel,
    Contact,
    DecodeError,
    Disposition,
    DispositionRecorded,
    Envelope,
    Event,
    FormSubmitted,
    Handoff,
    LeadAssigned,
    LeadIdentified,
    LeadQualified,
    LeadScored,
    LeadStatus,
    Qualification,
    Record,
    ScoreReason,
    SlaBreached,
    TouchLogged,
    Visitor,
    VisitorActivityRecorded,
    all_topics,
    json_schemas,
)

LEAD = "3f1e2d4c-5b6a-5978-8a9b-0c1d2e3f4a5b"
T = datetime(2026, 5, 4, 9, 30, 15, 123456, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))


def contact() -> Contact:
    return Contact(
        email="åsa.öberg@nordvik.se",
        first_name="Åsa",
        last_name="Öberg",
        company="Nordvik Logistics AB",
        job_title="VD",
        phone="+46701234567",
        country="SE",
        company_size=250,
        industry="logistics",
        website="nordvik.se",
    )


def reasons() -> list[ScoreReason]:
    return [
        ScoreReason(rule="decision-maker title", category="fit", points=25),
        ScoreReason(rule="viewed pricing (x2)", category="engagement", points=30),
    ]


def activities() -> list[ActivitySummary]:
    return [ActivitySummary(type=ActivityType.PAGE_VIEWED, occurred_at=T, url="https://leadrelay.example/pricing")]


def sample(cls: type[Event]) -> Event:
    """A valid instance of every event type, with non-ASCII text and nested models."""
    samples: dict[type[Event], Event] = {
        FormSubmitted: FormSubmitted(
            lead_id=LEAD,
            form_id="demo-request",
            submitted_at=T,
            contact=contact(),
            custom={"预算": "十万", "utm_source": "linkedin"},
            page_url="https://leadrelay.example/demo",
            visitors=[Visitor(kind="anonymous", id="ajs-7f3e")],
        ),
        VisitorActivityRecorded: VisitorActivityRecorded(
            lead_id=LEAD,  # here the visitor's key: the record key all the same
            visitor=Visitor(kind="anonymous", id="ajs-ä7f3e"),
            activity=ActivityType.PAGE_VIEWED,
            occurred_at=T,
            url="https://leadrelay.example/prisättning",
            properties={"name": "Priser"},
        ),
        LeadIdentified: LeadIdentified(
            lead_id=LEAD,
            contact=contact(),
            custom={"plan": "Größe"},
            visitors=[Visitor(kind="anonymous", id="ajs-7f3e"), Visitor(kind="user", id="crm-4711")],
            identified_at=T,
        ),
        ActivityRecorded: ActivityRecorded(
            lead_id=LEAD,
            email="åsa.öberg@nordvik.se",
            activity=ActivityType.CONTENT_DOWNLOADED,
            occurred_at=T,
            url="https://leadrelay.example/whitepaper",
            properties={"asset": "Größenordnung.pdf"},
        ),
        LeadScored: LeadScored(
            lead_id=LEAD,
            score=55,
            fit=25,
            engagement=30,
            status=LeadStatus.LEAD,
            previous_status=None,
            reasons=reasons(),
            scored_at=T,
        ),
        LeadQualified: LeadQualified(
            lead_id=LEAD,
            qualification=Qualification.MQL,
            cycle=2,
            score=61,
            reasons=reasons(),
            contact=contact(),
            custom={"wie": "Jan de Vries"},
            activities=activities(),
            qualified_at=T,
        ),
        LeadAssigned: LeadAssigned(
            lead_id=LEAD,
            cycle=1,
            rep_id="astrid.lindqvist",
            territory="nordics",
            assigned_at=T,
            handoff=Handoff(
                contact=contact(),
                qualification=Qualification.HANDRAISER,
                score=40,
                reasons=reasons(),
                activities=activities(),
                account="nordvik",
                matched_by="account",
            ),
        ),
        TouchLogged: TouchLogged(
            lead_id=LEAD,
            rep_id="jonas.becker",
            channel=Channel.CALL,
            note="Rückruf am Montag",
            touched_at=T,
        ),
        DispositionRecorded: DispositionRecorded(
            lead_id=LEAD,
            rep_id="wang.fang",
            disposition=Disposition.RECYCLE,
            reason="预算明年",
            recorded_at=T,
        ),
        SlaBreached: SlaBreached(
            lead_id=LEAD,
            clock="first_touch",
            cycle=1,
            rep_id="olivia.smith",
            territory="rest-of-world",
            due_at=T,
            breached_at=T + timedelta(seconds=1),
        ),
    }
    return samples[cls]


ALL = list(EVENT_TYPES.values())
TOPIC_OF = {
    FormSubmitted: LEADS_INTAKE,
    ActivityRecorded: LEADS_INTAKE,
    VisitorActivityRecorded: LEADS_INTAKE,
    LeadIdentified: LEADS_INTAKE,
    LeadScored: LEADS_SCORED,
    LeadQualified: LEADS_SCORED,
    LeadAssigned: LEADS_ASSIGNED,
    TouchLogged: LEADS_FEEDBACK,
    DispositionRecorded: LEADS_FEEDBACK,
    SlaBreached: SLA_ALERTS,
}


def envelope(data: Event | None = None, time: datetime = T) -> Envelope:
    return Envelope.new(data or sample(TouchLogged), source="leadrelay/test", time=time, event_id="evt-1")


def with_header(record: Record, name: str, value: bytes | None) -> Record:
    """The record with header `name` replaced (None: removed)."""
    headers = tuple((k, v) for k, v in record.headers if k != name)
    if value is not None:
        headers += ((name, value),)
    return dataclasses.replace(record, headers=headers)


# ------------------------------------------------------------ envelope and records


def test_every_event_type_is_registered_once() -> None:
    assert len(EVENT_TYPES) == 10
    assert set(ALL) == set(TOPIC_OF)
    for type_, cls in EVENT_TYPES.items():
        assert type_ == cls.TYPE
        assert type_.startswith("leadrelay.") and type_.endswith(".v1")


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_round_trip_of_every_event_type(cls: type[Event]) -> None:
    original = envelope(sample(cls))
    record = original.to_record()
    assert record.topic == TOPIC_OF[cls]
    decoded = Envelope.from_record(record)
    assert decoded == original
    assert type(decoded.data) is cls
    assert decoded.data.model_dump() == sample(cls).model_dump()
    assert decoded.type == cls.TYPE


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_cloudevents_headers_and_key(cls: type[Event]) -> None:
    record = envelope(sample(cls)).to_record()
    headers = dict(record.headers)
    assert len(headers) == len(record.headers), "no header twice"
    assert headers == {
        "ce_specversion": b"1.0",
        "ce_id": b"evt-1",
        "ce_source": b"leadrelay/test",
        "ce_type": cls.TYPE.encode(),
        "ce_time": T.isoformat().encode(),
        "ce_subject": LEAD.encode(),
        "content-type": CONTENT_TYPE.encode(),
    }
    assert CONTENT_TYPE == "application/json"
    assert record.key == LEAD.encode()
    assert json.loads(record.value)["lead_id"] == LEAD


def test_payload_is_utf8_json_of_the_model() -> None:
    record = envelope(sample(DispositionRecorded)).to_record()
    body = json.loads(record.value.decode("utf-8"))
    assert body["reason"] == "预算明年"
    assert body["disposition"] == "recycle"
    assert datetime.fromisoformat(body["recorded_at"]) == T


def test_new_generates_unique_ids() -> None:
    data = sample(TouchLogged)
    a = Envelope.new(data, "s", T)
    b = Envelope.new(data, "s", T)
    assert a.id and b.id and a.id != b.id
    assert a.subject == LEAD
    assert a.topic == LEADS_FEEDBACK


def test_ce_time_keeps_its_offset() -> None:
    local = datetime(2026, 5, 4, 11, 30, tzinfo=CEST)
    record = envelope(time=local).to_record()
    assert record.header("ce_time") == "2026-05-04T11:30:00+02:00"
    decoded = Envelope.from_record(record)
    assert decoded.time == local
    assert decoded.time.utcoffset() == timedelta(hours=2)


def test_ce_time_with_z_suffix_is_accepted() -> None:
    record = with_header(envelope().to_record(), "ce_time", b"2026-05-04T09:30:00Z")
    assert Envelope.from_record(record).time == datetime(2026, 5, 4, 9, 30, tzinfo=UTC)


def test_record_header_lookup() -> None:
    record = Record(topic="t", key=None, value=b"", headers=(("a", b"1"), ("b", b"\xff")))
    assert record.header("a") == "1"
    assert record.header("b") == "\ufffd"
    assert record.header("c") is None


# ------------------------------------------------------------ poison records


@pytest.mark.parametrize("header", ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"])
def test_missing_header(header: str) -> None:
    record = with_header(envelope().to_record(), header, None)
    with pytest.raises(DecodeError, match=f"missing CloudEvents header\\(s\\): {header}"):
        Envelope.from_record(record)


def test_empty_header_counts_as_missing() -> None:
    record = with_header(envelope().to_record(), "ce_id", b"")
    with pytest.raises(DecodeError, match="ce_id"):
        Envelope.from_record(record)


def test_all_missing_headers_are_named() -> None:
    record = Record(topic=LEADS_FEEDBACK, key=LEAD.encode(), value=envelope().to_record().value)
    with pytest.raises(DecodeError) as info:
        Envelope.from_record(record)
    for name in ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"):
        assert name in str(info.value)


@pytest.mark.parametrize("version", [b"0.3", b"2.0", b"1"])
def test_wrong_specversion(version: bytes) -> None:
    record = with_header(envelope().to_record(), "ce_specversion", version)
    with pytest.raises(DecodeError, match="unsupported ce_specversion"):
        Envelope.from_record(record)


@pytest.mark.parametrize("type_", [b"leadrelay.feedback.touch_logged.v2", b"com.example.unknown", b"TouchLogged"])
def test_unknown_type(type_: bytes) -> None:
    record = with_header(envelope().to_record(), "ce_type", type_)
    with pytest.raises(DecodeError, match="unknown event type"):
        Envelope.from_record(record)


@pytest.mark.parametrize(
    "time",
    [
        b"yesterday",
        b"2026-13-01T00:00:00Z",
        b"04/05/2026 09:30",
        b"0001-01-01T00:00:00+14:00",  # before year 1 once in UTC
        b"9999-12-31T23:59:59-14:00",
    ],
)
def test_bad_ce_time(time: bytes) -> None:
    record = with_header(envelope().to_record(), "ce_time", time)
    with pytest.raises(DecodeError, match="bad ce_time"):
        Envelope.from_record(record)


@pytest.mark.parametrize("time", [b"2026-05-04T09:30:00", b"2026-05-04"])
def test_naive_ce_time(time: bytes) -> None:
    record = with_header(envelope().to_record(), "ce_time", time)
    with pytest.raises(DecodeError, match="ce_time has no timezone"):
        Envelope.from_record(record)


@pytest.mark.parametrize("value", [b"", b"{", b"not json", b"\xff\xfe\x00", b'{"lead_id": "x",}'])
def test_invalid_json(value: bytes) -> None:
    record = dataclasses.replace(envelope().to_record(), value=value)
    with pytest.raises(DecodeError, match="invalid leadrelay.feedback.touch_logged.v1 payload"):
        Envelope.from_record(record)


@pytest.mark.parametrize(
    "payload",
    [
        {},
        [],
        None,
        {"lead_id": LEAD},  # required fields missing
        {"lead_id": LEAD, "rep_id": "r", "channel": "pigeon", "touched_at": T.isoformat()},  # bad enum
        {"lead_id": LEAD, "rep_id": "r", "channel": "call", "touched_at": "tomorrow"},  # bad datetime
        {"lead_id": 42, "rep_id": "r", "channel": "call", "touched_at": T.isoformat()},  # wrong type
    ],
)
def test_json_not_matching_the_model(payload: object) -> None:
    record = dataclasses.replace(envelope().to_record(), value=json.dumps(payload).encode())
    with pytest.raises(DecodeError, match="invalid leadrelay.feedback.touch_logged.v1 payload"):
        Envelope.from_record(record)


def test_payload_of_another_type_is_rejected() -> None:
    record = with_header(envelope().to_record(), "ce_type", SlaBreached.TYPE.encode())
    with pytest.raises(DecodeError, match="leadrelay.sla.deadline_breached.v1"):
        Envelope.from_record(record)


def test_extra_fields_are_rejected() -> None:
    body = json.loads(envelope().to_record().value)
    body["priority"] = "high"
    record = dataclasses.replace(envelope().to_record(), value=json.dumps(body).encode())
    with pytest.raises(DecodeError, match="priority"):
        Envelope.from_record(record)


def test_extra_fields_in_a_nested_model_are_rejected() -> None:
    body = json.loads(envelope(sample(LeadQualified)).to_record().value)
    body["contact"]["linkedin"] = "https://linkedin.example/in/asa"
    record = dataclasses.replace(envelope(sample(LeadQualified)).to_record(), value=json.dumps(body).encode())
    with pytest.raises(DecodeError, match="linkedin"):
        Envelope.from_record(record)


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)


# ------------------------------------------------------------ topics and schemas


def test_topics_and_dead_letter_topics() -> None:
    topics = all_topics()
    assert topics[LEADS_INTAKE] == 6
    assert topics[SLA_ALERTS] == 3
    for t in (LEADS_INTAKE, LEADS_SCORED, LEADS_ASSIGNED, LEADS_FEEDBACK, SLA_ALERTS):
        assert topics[t + ".dlq"] == 1
    assert len(topics) == 10


def test_one_json_schema_per_type() -> None:
    schemas = json_schemas()
    assert set(schemas) == set(EVENT_TYPES)
    for type_, schema in schemas.items():
        cls = EVENT_TYPES[type_]
        assert schema["$id"] == f"urn:{type_}"
        assert schema["x-topic"] == cls.TOPIC
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert "lead_id" in schema["required"]
        assert set(schema["properties"]) == set(cls.model_fields)
        json.dumps(schema)  # serialisable


def test_stored_schemas_are_up_to_date() -> None:
    assert write_schemas(check=True) == 0


def test_write_schemas_check_reports_stale_files(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert write_schemas(check=True, directory=tmp_path) == 1
    assert list(tmp_path.iterdir()) == []  # check mode writes nothing
    assert "stale JSON Schemas" in capsys.readouterr().err
    assert write_schemas(directory=tmp_path) == 0
    assert len(list(tmp_path.glob("*.json"))) == len(EVENT_TYPES)
    assert write_schemas(check=True, directory=tmp_path) == 0
    (tmp_path / f"{TouchLogged.TYPE}.json").write_text("{}\n")
    assert write_schemas(check=True, directory=tmp_path) == 1


# ------------------------------------------------------------ partitioner


# Kafka's own vectors: org.apache.kafka.common.utils.UtilsTest.testMurmur2 (apache/kafka, clients/src/test/java).
KAFKA_MURMUR2 = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (bytes([ord("a"), ord("b"), ord("c")]), 479470107),
]


def signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


@pytest.mark.parametrize(("key", "expected"), KAFKA_MURMUR2, ids=[k.decode() for k, _ in KAFKA_MURMUR2])
def test_murmur2_matches_kafka(key: bytes, expected: int) -> None:
    assert signed32(_murmur2(key)) == expected


@pytest.mark.parametrize(("key", "expected"), KAFKA_MURMUR2, ids=[k.decode() for k, _ in KAFKA_MURMUR2])
@pytest.mark.parametrize("partitions", [1, 3, 6, 7, 12])
def test_partition_matches_kafkas_default_partitioner(key: bytes, expected: int, partitions: int) -> None:
    # Kafka: Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions
    assert partition_for(key, partitions) == (expected & 0x7FFFFFFF) % partitions


def test_known_partitions_of_the_kafka_vectors() -> None:
    assert [partition_for(k, 6) for k, _ in KAFKA_MURMUR2] == [(v & 0x7FFFFFFF) % 6 for _, v in KAFKA_MURMUR2]
    assert partition_for(b"21", 6) == 0  # 1173551340 % 6
    assert partition_for(b"abc", 6) == 3  # 479470107 % 6


def test_murmur2_is_32_bit_and_covers_every_tail_length() -> None:
    for n in range(0, 12):
        h = _murmur2(b"x" * n)
        assert 0 <= h <= 0xFFFFFFFF
    assert len({_murmur2(b"x" * n) for n in range(12)}) == 12


def test_same_key_same_partition() -> None:
    key = LEAD.encode()
    assert len({partition_for(key, 6) for _ in range(100)}) == 1
    assert 0 <= partition_for(key, 6) < 6
    assert partition_for("åsa.öberg@nordvik.se".encode(), 6) == partition_for("åsa.öberg@nordvik.se".encode(), 6)


def test_keys_spread_over_partitions() -> None:
    counts = Counter(partition_for(f"lead-{i}".encode(), 6) for i in range(6000))
    assert set(counts) == set(range(6))
    assert min(counts.values()) > 800  # about 1000 each


def test_null_key_goes_to_partition_zero() -> None:
    assert partition_for(None, 6) == 0


# ---------------------------------------------------------------- the actor (audit trail)


def test_events_record_who_caused_them_and_older_events_still_decode() -> None:
    from leadrelay.events import Actor

    manager = Actor(kind="person", id="tom.weber", role="manager")
    touch = TouchLogged(lead_id=LEAD, rep_id="jonas.becker", channel=Channel.CALL, touched_at=T, actor=manager)
    decoded = Envelope.from_record(envelope(touch).to_record()).data
    assert isinstance(decoded, TouchLogged)
    assert (decoded.rep_id, decoded.actor) == ("jonas.becker", manager)
    # A payload written before the field existed: no actor.
    old = envelope(touch).to_record()
    body = json.loads(old.value)
    del body["actor"]
    legacy = Envelope.from_record(dataclasses.replace(old, value=json.dumps(body).encode())).data
    assert isinstance(legacy, TouchLogged) and legacy.actor is None
    crm = Actor(kind="source", id="crm", role="crm")
    disposition = DispositionRecorded(
        lead_id=LEAD, rep_id="jonas.becker", disposition=Disposition.ACCEPTED, recorded_at=T, actor=crm
    )
    assert Envelope.from_record(envelope(disposition).to_record()).data == disposition
    with pytest.raises(ValueError):
        Actor(kind="robot", id="x", role="y")  # type: ignore[arg-type]
    for cls in (TouchLogged, DispositionRecorded, ActivityRecorded):
        assert "actor" not in cls.model_json_schema().get("required", []), f"{cls.__name__}.actor must stay optional"


def test_what_each_disposition_does_is_written_on_the_contract() -> None:
    from leadrelay.events import Disposition, LeadStatus

    meaning = {d: (d.closes_assignment, d.returns_to_marketing, d.needs_reason, d.lead_status) for d in Disposition}
    assert meaning == {
        Disposition.ACCEPTED: (False, False, False, LeadStatus.ACCEPTED),
        Disposition.RECYCLE: (True, True, True, LeadStatus.RECYCLED),
        Disposition.JUNK: (True, False, True, LeadStatus.JUNK),
        Disposition.UNREACHABLE: (True, True, False, LeadStatus.RECYCLED),
    }
