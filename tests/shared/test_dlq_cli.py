"""``leadrelay dlq list|replay`` against the embedded event log and against real Kafka."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadrelay.bus.kafka import KafkaBus, create_topics
from leadrelay.bus.memory import MemoryBus
from leadrelay.cli import main
from leadrelay.events import LEADS_INTAKE, ActivityRecorded, ActivityType, Envelope, Record, all_topics, dlq_topic


def dead_letter(seq: int) -> tuple[str, Record]:
    env = Envelope.new(
        ActivityRecorded(
            lead_id="lead-d",
            activity=ActivityType.PAGE_VIEWED,
            occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
            properties={"seq": str(seq)},
        ),
        source="/test",
        time=datetime(2026, 3, 1, tzinfo=UTC),
    )
    rec = env.to_record()
    return env.id, Record(
        topic=dlq_topic(LEADS_INTAKE),
        key=rec.key,
        value=rec.value,
        headers=rec.headers
        + (
            ("dlq_error", f"undecodable: unknown event type (seq {seq})".encode()),
            ("dlq_group", b"scoring"),
            ("dlq_topic", LEADS_INTAKE.encode()),
            ("dlq_partition", b"3"),
            ("dlq_offset", str(40 + seq).encode()),
            ("dlq_time", b"2026-03-01T10:00:00+00:00"),
        ),
    )


@pytest.fixture(autouse=True)
def _keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI configures logging onto the captured stdout, which pytest closes after the test."""
    monkeypatch.setattr("leadrelay.cli.configure_logging", lambda *a: None)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    monkeypatch.setenv("LEADRELAY_DATA_DIR", str(tmp_path))
    ids, recs = zip(*(dead_letter(i) for i in range(3)), strict=True)

    async def seed() -> None:
        bus = MemoryBus(path=tmp_path / "bus.db")
        await bus.publish(list(recs))
        await bus.stop()

    asyncio.run(seed())
    code, out, err = run_cli(["dlq", "list", LEADS_INTAKE, "--embedded", "--json"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["event_id"] for r in rows] == list(ids)
    assert rows[0]["error"] == "undecodable: unknown event type (seq 0)"
    assert (rows[0]["group"], rows[0]["topic"], rows[0]["partition"], rows[0]["source_offset"]) == (
        "scoring",
        LEADS_INTAKE,
        3,
        40,
    )

    # While a running Leadrelay holds the log, the tool refuses instead of forking the offsets.
    holder = MemoryBus(path=tmp_path / "bus.db")
    try:
        code, _, err = run_cli(["dlq", "replay", LEADS_INTAKE, "--embedded"], capsys)
    finally:
        asyncio.run(holder.stop())
    assert code == 2 and "in use" in err

    code, _, err = run_cli(["dlq", "replay", LEADS_INTAKE, "--embedded", "--id", ids[1]], capsys)
    assert code == 0 and "replayed 1" in err
    code, _, err = run_cli(["dlq", "replay", LEADS_INTAKE, "--embedded", "--id", "nope"], capsys)
    assert code == 2 and "no dead letter" in err

    async def topic() -> list[Record]:
        bus = MemoryBus(path=tmp_path / "bus.db")
        try:
            return bus.records(LEADS_INTAKE)
        finally:
            await bus.stop()

    replayed = asyncio.run(topic())
    assert [r.header("ce_id") for r in replayed] == [ids[1]]
    assert not any(k.startswith("dlq_") for k, _ in replayed[0].headers)


def test_kafka(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    prefix = f"{unique}."
    monkeypatch.setenv("LEADRELAY_KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("LEADRELAY_KAFKA_PREFIX", prefix)
    ids, recs = zip(*(dead_letter(i) for i in range(2)), strict=True)

    async def seed() -> None:
        await create_topics(kafka_bootstrap, all_topics(), prefix=prefix)
        bus = KafkaBus(kafka_bootstrap, client_id=unique, prefix=prefix)
        await bus.start()
        await bus.publish(list(recs))
        await bus.stop()

    asyncio.run(seed())
    code, out, err = run_cli(["dlq", "list", LEADS_INTAKE, "--json"], capsys)
    assert code == 0, err
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == list(ids)
    code, _, err = run_cli(["dlq", "replay", LEADS_INTAKE], capsys)
    assert code == 0 and "replayed 2" in err

    async def topic() -> list[Record]:
        bus = KafkaBus(kafka_bootstrap, client_id=unique, prefix=prefix)
        await bus.start()
        try:
            return await bus.read_topic(LEADS_INTAKE)
        finally:
            await bus.stop()

    assert sorted(r.header("ce_id") or "" for r in asyncio.run(topic())) == sorted(ids)
