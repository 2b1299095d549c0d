"""One hop of a baseline chain: consume a topic, forward every record to the next topic.

The same client settings as Leadrelay's bus (leadrelay.bus.kafka): consumer group with
manual commits, read_committed, getmany(max_records=500); idempotent producer with
acks=all and linger_ms=5; offsets committed only after the batch's work is durable.

--mode plain  forward only (the cost of the hops themselves).
--mode pg     per batch, one asyncpg transaction inserting an inbox row (event id) and
              an outbox row (the whole record) per message, as Leadrelay's workers do;
              after the broker acknowledged the batch, its outbox rows are deleted (a
              second, one-statement transaction, as Leadrelay's outbox relay does).

Run as ``python -m bench.relay --mode plain --source T0 --sink T1 --group G``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS "{schema}";
CREATE TABLE IF NOT EXISTS "{schema}".inbox (
    event_id varchar(64) PRIMARY KEY, topic varchar(200) NOT NULL, processed_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS "{schema}".outbox (
    id bigserial PRIMARY KEY, event_id varchar(64) NOT NULL, topic varchar(200) NOT NULL,
    key varchar(200) NOT NULL, headers text NOT NULL, value text NOT NULL, created_at timestamptz NOT NULL);
"""


async def run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = None
    if args.mode == "pg":
        import asyncpg

        pool = await asyncpg.create_pool(args.database_url, min_size=1, max_size=2)
        async with pool.acquire() as conn:
            await conn.execute(SCHEMA_SQL.format(schema=args.schema))
    producer = AIOKafkaProducer(
        bootstrap_servers=args.kafka, enable_idempotence=True, acks="all", linger_ms=5, request_timeout_ms=30000
    )
    consumer = AIOKafkaConsumer(
        args.source,
        bootstrap_servers=args.kafka,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_interval_ms=300000,
        session_timeout_ms=10000,
        heartbeat_interval_ms=3000,
    )
    await producer.start()
    await consumer.start()
    for _ in range(600):  # ready once the group gave this consumer its partitions (bounded: 60 s)
        if consumer.assignment():
            break
        await asyncio.sleep(0.1)
    print("ready", flush=True)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            if not batches:
                continue
            records = [m for messages in batches.values() for m in messages]
            ids: list[int] = []
            if pool is not None:
                now = datetime.now(UTC)
                eids = [_ce_id(m.headers) for m in records]
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute(
                        f'INSERT INTO "{args.schema}".inbox (event_id, topic, processed_at)'
                        " SELECT e, $2, $3 FROM unnest($1::varchar[]) AS e",
                        eids,
                        args.source,
                        now,
                    )
                    rows = await conn.fetch(
                        f'INSERT INTO "{args.schema}".outbox (event_id, topic, key, headers, value, created_at)'
                        " SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::text[], $5::text[],"
                        " $6::timestamptz[]) RETURNING id",
                        eids,
                        [args.sink] * len(records),
                        [(m.key or b"").decode() for m in records],
                        [json.dumps([[k, v.decode()] for k, v in m.headers]) for m in records],
                        [m.value.decode() for m in records],
                        [now] * len(records),
                    )
                    ids = [r["id"] for r in rows]
            futures = [
                await producer.send(args.sink, value=m.value, key=m.key, headers=list(m.headers)) for m in records
            ]
            await asyncio.gather(*futures)
            if pool is not None and ids:
                async with pool.acquire() as conn:
                    await conn.execute(f'DELETE FROM "{args.schema}".outbox WHERE id = ANY($1::bigint[])', ids)
            await consumer.commit(
                {
                    TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(messages[-1].offset + 1, "")
                    for tp, messages in batches.items()
                    if messages
                }
            )
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await producer.stop()
        if pool is not None:
            await pool.close()


def _ce_id(headers: tuple[tuple[str, bytes], ...]) -> str:
    for k, v in headers:
        if k == "ce_id":
            return v.decode()
    return ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["plain", "pg"], required=True)
    parser.add_argument("--kafka", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--schema", default="")
    args = parser.parse_args()
    args.database_url = args.database_url.replace("postgresql+asyncpg://", "postgresql://")
    try:
        import uvloop  # the services run on uvloop too (uvicorn picks it when installed)

        uvloop.run(run(args))
    except ImportError:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
