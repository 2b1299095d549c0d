"""What intake's spool costs: latency and throughput of ``Intake.accept`` on real Kafka and PostgreSQL.

Four ways, each for ``--events`` form submissions at ``--concurrency`` in flight:

- ``direct``        no spool: publish and wait for the broker's acknowledgement (intake before the spool);
- ``fallback``      the default: look whether the spool holds events (one indexed read), publish
                    directly, spool only what the broker does not acknowledge within 300 ms;
- ``always``        every event written to the spool (one insert and commit), the relay publishes it;
- ``broker-down``   fallback with no broker reachable: every event goes to the spool.

For ``always`` and ``broker-down`` the figure is the answer's latency; the relay's delivery
follows (``always``: the time until the spool is empty is printed too). Run briefly:
``python -m bench.spool --events 2000`` (docs/architecture.md has the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from intake.service import Intake
from leadrelay.bus.kafka import KafkaBus, create_topics
from leadrelay.clock import SystemClock
from leadrelay.events import all_topics
from leadrelay.logging import configure_logging
from leadrelay.rules import load_rules
from leadrelay.runtime import Runtime, load_services
from leadrelay.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
MODES = ("direct", "fallback", "always", "broker-down")


def quantiles(values: list[float]) -> dict[str, float]:
    v = sorted(values)

    def q(p: float) -> float:
        return round(v[min(len(v) - 1, max(0, round(p / 100 * len(v)) - 1))] * 1000, 2)

    return {"p50": q(50), "p95": q(95), "p99": q(99), "max": round(v[-1] * 1000, 2)}


async def measure(mode: str, args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    kafka = args.kafka if mode != "broker-down" else "127.0.0.1:1"  # nothing listens there
    settings = Settings(
        config=ROOT / "config" / "example.yaml",
        database_url=args.database_url,
        schema_prefix=f"{prefix}_",
        kafka_prefix=f"{prefix}.",
        intake_spool="always" if mode == "always" else "fallback",
    )
    rules = load_rules(settings.config)
    bus = KafkaBus(kafka, client_id=f"bench-spool-{mode}", prefix=f"{prefix}.")
    runtime = Runtime(load_services(["intake"]), settings, rules, SystemClock(), bus)
    await runtime.start()
    ctx = runtime.contexts[0]
    spool = ctx.resources.spool
    intake = Intake(
        rules,
        uuid.UUID(settings.lead_id_namespace),
        ctx.clock,
        bus,
        spool=None if mode == "direct" else spool,
        always_spool=mode == "always",
    )
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(args.events):
        queue.put_nowait(i)

    async def client() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            env = intake.form_submission("demo-request", {"email": f"bench{i}@spool-{mode}.example", "country": "SE"})
            t0 = time.perf_counter()
            await intake.accept(env)
            latencies.append(time.perf_counter() - t0)

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        took = time.perf_counter() - t0
        result: dict[str, Any] = {"mode": mode, "events": len(latencies), "per_second": round(len(latencies) / took)}
        result.update(quantiles(latencies))
        if mode == "always":
            t1 = time.perf_counter()
            while True:
                if not await spool.holds_events():
                    break
                await asyncio.sleep(0.01)
            result["spool_drained_after_s"] = round(time.perf_counter() - t1, 2)
        if mode == "broker-down":
            await spool.measure()
            result["spooled"] = spool.depth
            async with ctx.database.transaction() as session:
                size = await session.scalar(text("SELECT pg_total_relation_size('outbox')"))
            result["bytes_per_event"] = round(int(size or 0) / max(1, spool.depth or 1))
        return result
    finally:
        await runtime.stop()  # broker-down: the spooled rows stay; the schema is dropped below


async def drop(database_url: str, prefix: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for r in await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", prefix + "_%"):
            await conn.execute(f'DROP SCHEMA "{r["nspname"]}" CASCADE')
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> None:
    configure_logging("WARNING", "console")
    rows = []
    for mode in args.modes:
        prefix = "spoolbench" + uuid.uuid4().hex[:6]
        await create_topics(args.kafka, all_topics(), prefix=f"{prefix}.")
        try:
            rows.append(await measure(mode, args, prefix))
        finally:
            await drop(args.database_url, prefix)
    print(f"\n{args.events} forms per mode, {args.concurrency} in flight (Intake.accept, no HTTP); latency in ms\n")
    print("| mode | per second | p50 | p95 | p99 | max | notes |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        notes = ", ".join(
            f"{k} {v}" for k, v in r.items() if k in ("spool_drained_after_s", "spooled", "bytes_per_event")
        )
        print(f"| {r['mode']} | {r['per_second']} | {r['p50']} | {r['p95']} | {r['p99']} | {r['max']} | {notes} |")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.spool", description=__doc__)
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--database-url", default=None, help="default: deploy/postgres.sh url")
    p.add_argument("--kafka", default=None, help="default: 127.0.0.1:$KAFKA_PORT")
    args = p.parse_args()
    if args.database_url is None:
        args.database_url = subprocess.run(  # noqa: S603
            [str(ROOT / "deploy" / "postgres.sh"), "url"], check=True, capture_output=True, text=True
        ).stdout.strip()
    if args.kafka is None:
        args.kafka = f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
