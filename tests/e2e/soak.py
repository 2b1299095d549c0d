"""The soak run (`make soak`): a long, steady stream of leads while everything is broken in turn.

Starts its own PostgreSQL, Kafka broker and Toxiproxy (ports apart from the development and
test instances, so that it never disturbs them), runs the five services each as its own process
with their Kafka and PostgreSQL traffic through Toxiproxy, and submits ``--leads`` leads (a
form, then three behaviour events in order) at ``--rate`` leads per second. Meanwhile: each
consumer service is killed with SIGKILL ``--kills`` times at random moments and restarted, the
broker is killed (SIGKILL) twice, PostgreSQL is restarted twice, and for ``--spell`` seconds the
network misbehaves (latency, a bandwidth trickle, sliced packets, connections reset and timed
out). Then every invariant of tests/e2e/chaos.py is checked over every accepted lead, and the
table is printed and written to docs/reliability.md (unless --no-write).

The load client retries 503s, timeouts and cut connections with the same idempotency key, and
counts a lead as accepted only on its form's 202.

    python -m tests.e2e.soak                      # the full run (about 35 minutes)
    python -m tests.e2e.soak --leads 300 --kills 2 --spell 20 --no-write   # a short one
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from leadrelay.bus.kafka import create_topics
from leadrelay.events import all_topics
from tests.e2e.chaos import (
    CONSUMERS,
    GROUP_TOPICS,
    ROOT,
    Kafka,
    Load,
    Verdict,
    check,
    dsn,
    groups_of,
    rules,
    script,
    wait_gone,
)
from tests.e2e.distributed import Cluster, cluster
from tests.toxiproxy import Proxy, Toxiproxy, toxiproxy_server

REPORT = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
FIRST_TOUCH_SECONDS = 60


@dataclass
class Figures:
    kills: Counter[str] = field(default_factory=Counter)
    service_catch_up: dict[str, list[float]] = field(default_factory=dict)
    broker_catch_up: list[float] = field(default_factory=list)
    postgres_catch_up: list[float] = field(default_factory=list)
    network_catch_up: list[float] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    unplanned_exits: Counter[str] = field(default_factory=Counter)
    slow: list[str] = field(default_factory=list)  # catch-ups that timed out


def log(msg: str) -> None:
    print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {msg}", flush=True)


class Soak:
    def __init__(self, args: argparse.Namespace, run_dir: Path) -> None:
        self.args = args
        self.run_dir = run_dir
        self.rng = random.Random(args.seed)
        self.figures = Figures()
        self.kafka_env = {
            **os.environ,
            "KAFKA_PORT": str(args.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(args.kafka_port + 1),
            "KAFKA_PROXY_PORT": str(args.kafka_port + 2),
            "KAFKA_PROXY_LISTENER_PORT": str(args.kafka_port + 3),
        }
        self.pg_env = {**os.environ, "PG_PORT": str(args.pg_port)}

    # ------------------------------------------------------------ infrastructure

    async def revive(self, c: Cluster, services: list[str]) -> None:
        """Start the services (again) until they are ready: a start may fail while a dependency is
        on its way back; the run goes on, and the failure is counted."""
        for attempt in range(10):
            for s in services:
                if s not in c.procs or c.procs[s].poll() is not None:
                    c.start(s)
            try:
                await asyncio.to_thread(c.wait_ready, services, 90)
                return
            except AssertionError as exc:
                log(f"not ready yet (attempt {attempt + 1}): {str(exc).splitlines()[0]}")
                for s in services:
                    if c.procs[s].poll() is None:
                        c.stop(s, signal.SIGKILL)
                await asyncio.sleep(2)
        raise RuntimeError(f"{services} would not start")

    async def catch_up(self, k: Kafka, groups: list[str], what: str, into: list[float]) -> None:
        try:
            into.append(await k.caught_up(groups, timeout=self.args.catch_up_timeout))
        except Exception as exc:
            self.figures.slow.append(f"{what}: {exc}")
            log(f"{what}: {exc}")

    async def watchdog(self, c: Cluster) -> None:
        """A service that exits by itself is counted and started again."""
        for s, proc in list(c.procs.items()):
            if proc.poll() is not None and s in c.procs:
                self.figures.unplanned_exits[s] += 1
                log(f"{s} exited by itself ({proc.returncode}); starting it again\n{c.tail(s, 15)}")
                await self.revive(c, [s])

    async def kill_service(self, c: Cluster, k: Kafka, service: str) -> None:
        c.stop(service, signal.SIGKILL)
        self.figures.kills[service] += 1
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        await self.revive(c, [service])
        await self.catch_up(
            k, groups_of([service]), f"{service} kill", self.figures.service_catch_up.setdefault(service, [])
        )

    async def kill_broker(self, k: Kafka) -> None:
        pid = int(script("kafka.sh", "pid", self.kafka_env).strip())
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(wait_gone, pid)
        self.figures.kills["kafka"] += 1
        await asyncio.sleep(self.rng.uniform(1.0, 5.0))
        await asyncio.to_thread(script, "kafka.sh", "start", self.kafka_env)
        await self.catch_up(k, list(GROUP_TOPICS), "broker kill", self.figures.broker_catch_up)

    async def restart_postgres(self, k: Kafka) -> None:
        await asyncio.to_thread(script, "postgres.sh", "restart", self.pg_env)
        self.figures.kills["postgres"] += 1
        await self.catch_up(k, list(GROUP_TOPICS), "postgres restart", self.figures.postgres_catch_up)

    async def network_spell(self, kafka: Proxy, pg: Proxy, k: Kafka, seconds: float) -> None:
        """Each fault in turn on both proxies, then a clean network and the catch-up."""
        faults: list[tuple[str, str, dict[str, int]]] = [
            ("latency", "downstream", {"latency": 250, "jitter": 150}),
            ("latency", "upstream", {"latency": 100, "jitter": 100}),
            ("bandwidth", "downstream", {"rate": 32}),
            ("slicer", "downstream", {"average_size": 64, "size_variation": 32, "delay": 200}),
            ("reset_peer", "upstream", {"timeout": 1500}),
            ("timeout", "upstream", {"timeout": 3000}),
        ]
        each = seconds / len(faults)
        for type_, stream, attrs in faults:
            log(f"network: {type_} {stream} {attrs} for {each:.0f}s on Kafka and PostgreSQL")
            self.figures.faults.append(f"{type_} ({stream}, {', '.join(f'{a}={v}' for a, v in attrs.items())})")
            names = [p.toxic(type_, stream, attrs) for p in (kafka, pg)]
            await asyncio.sleep(each)
            for p, name in zip((kafka, pg), names, strict=True):
                p.remove(name)
        await self.catch_up(k, list(GROUP_TOPICS), "network spell", self.figures.network_catch_up)

    # ------------------------------------------------------------------- the run

    async def run(self) -> tuple[Verdict, Load, float]:
        a = self.args
        log(f"run dir {self.run_dir}; starting PostgreSQL on {a.pg_port}, Kafka on {a.kafka_port}")
        await asyncio.to_thread(script, "postgres.sh", "start", self.pg_env)
        pg_direct = script("postgres.sh", "url", self.pg_env).strip()
        await asyncio.to_thread(script, "kafka.sh", "clean", self.kafka_env)  # its own broker: a fresh log
        await asyncio.to_thread(script, "kafka.sh", "start", self.kafka_env)
        bootstrap = f"127.0.0.1:{a.kafka_port}"
        prefix = "soak" + uuid.uuid4().hex[:8]
        schema_prefix = f"{prefix}_"
        await create_topics(bootstrap, all_topics(), prefix=f"{prefix}.")
        k = Kafka(bootstrap, f"{prefix}.")
        with toxiproxy_server(a.toxiproxy_port, self.run_dir / "toxiproxy") as toxi:
            try:
                return await self._with_proxies(toxi, k, pg_direct, schema_prefix, prefix)
            finally:
                await drop_schemas(pg_direct, schema_prefix)

    async def _with_proxies(
        self, toxi: Toxiproxy, k: Kafka, pg_direct: str, schema_prefix: str, prefix: str
    ) -> tuple[Verdict, Load, float]:
        a = self.args
        kafka_proxy = toxi.create("kafka", f"127.0.0.1:{a.kafka_port + 2}", f"127.0.0.1:{a.kafka_port + 3}")
        pg_proxy = toxi.create("postgres", f"127.0.0.1:{a.pg_port + 1}", f"127.0.0.1:{a.pg_port}")
        pg_via_proxy = pg_direct.replace(f":{a.pg_port}/", f":{a.pg_port + 1}/")
        assert pg_via_proxy != pg_direct, pg_direct
        services = ("intake", *CONSUMERS)
        config = rules(self.run_dir, FIRST_TOUCH_SECONDS)
        with cluster(self.run_dir, pg_via_proxy, kafka_proxy.listen, prefix, config, services=services) as c:
            load = Load(c, seed=self.rng.randrange(1 << 30), attempts=a.attempts, pause=1.0)
            duration = a.leads / a.rate
            log(f"{a.leads} leads at {a.rate}/s: about {duration / 60:.0f} min of load")
            started = time.monotonic()
            load_task = asyncio.create_task(load.run(0, a.leads, duration))
            spell_task = asyncio.create_task(self._spell_at(0.45 * duration, kafka_proxy, pg_proxy, k))
            await self._timeline(c, k, duration, load_task, load)
            await load_task
            await spell_task
            log(f"load done: {len(load.accepted)} of {load.submitted} accepted; retries {dict(load.failures)}")
            await self.watchdog(c)
            # Every first-touch deadline comes due; the SLA monitor's timer and the relays finish.
            await asyncio.sleep(FIRST_TOUCH_SECONDS + 5)
            await k.caught_up(list(GROUP_TOPICS), timeout=600)
            await asyncio.sleep(3)
            await load.client.aclose()
            elapsed = time.monotonic() - started
            log("checking the invariants over every lead ...")
            verdict = await check(k, pg_direct, schema_prefix, load.accepted)
            return verdict, load, elapsed

    async def _spell_at(self, at: float, kafka: Proxy, pg: Proxy, k: Kafka) -> None:
        await asyncio.sleep(at)
        await self.network_spell(kafka, pg, k, self.args.spell)

    async def _timeline(self, c: Cluster, k: Kafka, duration: float, load_task: asyncio.Task[None], load: Load) -> None:
        """The kills, spread at random over the load's duration; infrastructure at set moments
        (the broker kills and PostgreSQL restarts away from the network spell)."""
        a = self.args
        plan: list[tuple[float, str, Callable[[], Awaitable[None]]]] = []
        kills = [s for s in CONSUMERS for _ in range(a.kills)]
        self.rng.shuffle(kills)
        span = duration * 0.92
        for i, s in enumerate(kills):
            at = span * (i + self.rng.uniform(0.1, 0.9)) / len(kills)
            plan.append((at, f"SIGKILL {s}", lambda s=s: self.kill_service(c, k, s)))  # type: ignore[misc]
        for frac in (0.2, 0.75):
            plan.append((duration * frac, "SIGKILL the broker", lambda: self.kill_broker(k)))
        for frac in (0.35, 0.88):
            plan.append((duration * frac, "restart PostgreSQL", lambda: self.restart_postgres(k)))
        plan.sort(key=lambda p: p[0])
        t0 = time.monotonic()
        for n, (at, what, action) in enumerate(plan, 1):
            await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
            if load_task.done():
                load_task.result()  # its error, if any
                log(f"the load is over before {len(plan) - n + 1} planned faults (a slow start or restarts)")
            await self.watchdog(c)
            log(f"{n}/{len(plan)} {what} ({len(load.accepted)} of {load.submitted} leads accepted so far)")
            await action()


async def drop_schemas(pg: str, schema_prefix: str) -> None:
    conn = await asyncpg.connect(dsn(pg))
    try:
        for r in await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", schema_prefix + "%"):
            await conn.execute(f'DROP SCHEMA "{r["nspname"]}" CASCADE')
    finally:
        await conn.close()


def machine(args: argparse.Namespace, pg_version: str) -> str:
    mem = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    mem_gib = f"{int(mem.group(1)) / 2**20:.1f} GiB" if mem else "?"
    kafka_log = ROOT / ".run" / f"kafka-{args.kafka_port}" / "kafka.log"
    kafka_version = "?"
    if kafka_log.exists():
        m = re.search(r"Kafka version: (\S+)", kafka_log.read_text(errors="replace"))
        kafka_version = m.group(1) if m else "?"
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}), {mem_gib} memory, Linux {platform.release()}, "
        f"Python {platform.python_version()}, Kafka {kafka_version}, PostgreSQL {pg_version}"
    )


def seconds(xs: list[float]) -> str:
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.1f}"
    return f"median {statistics.median(xs):.1f}, max {max(xs):.1f}"


def table(s: Soak, v: Verdict, load: Load, elapsed: float) -> str:
    f = s.figures
    events = sum(load.accepted.values())
    rows = [
        ("leads submitted / accepted (202)", f"{load.submitted} / {len(load.accepted)}"),
        ("behaviour events accepted", f"{events}"),
        ("requests given up by the client", f"{load.given_up}"),
        ("client retries (by answer)", ", ".join(f"{k}: {n}" for k, n in sorted(load.failures.items())) or "0"),
        *((f"SIGKILLs of {svc}", f"{f.kills[svc]}") for svc in CONSUMERS),
        ("broker kills (SIGKILL)", f"{f.kills['kafka']}"),
        ("PostgreSQL restarts", f"{f.kills['postgres']}"),
        ("network faults (Kafka and PostgreSQL)", f"{s.args.spell:.0f} s: " + "; ".join(f.faults)),
        ("services that exited by themselves", ", ".join(f"{k}: {n}" for k, n in f.unplanned_exits.items()) or "0"),
        ("**lost**", f"**{len(v.lost)}**"),
        ("**doubled**", f"**{len(v.doubled)}**"),
        ("**out of order**", f"**{len(v.out_of_order)}**"),
        ("dead letters", f"{v.dead_letters}"),
        ("other findings", "; ".join(v.other) or "none"),
        *((f"catch-up after a SIGKILL of {svc} (s)", seconds(f.service_catch_up.get(svc, []))) for svc in CONSUMERS),
        ("catch-up after a broker kill (s)", seconds(f.broker_catch_up)),
        ("catch-up after a PostgreSQL restart (s)", seconds(f.postgres_catch_up)),
        ("catch-up after the network faults (s)", seconds(f.network_catch_up)),
        ("catch-ups slower than the limit", f"{len(f.slow)}" + (f" ({'; '.join(f.slow)})" if f.slow else "")),
        ("wall time", f"{elapsed / 60:.1f} min at {s.args.rate} leads/s offered"),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def write_report(text: str) -> None:
    doc = REPORT.read_text()
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    REPORT.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])


async def pg_version(url: str) -> str:
    conn = await asyncpg.connect(dsn(url))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--leads", type=int, default=20_000)
    p.add_argument("--rate", type=float, default=10.0, help="leads per second (each: a form and three events)")
    p.add_argument("--kills", type=int, default=21, help="SIGKILLs of each consumer service")
    p.add_argument("--spell", type=float, default=120.0, help="seconds of network faults")
    p.add_argument("--attempts", type=int, default=600, help="tries per request, a second apart")
    p.add_argument("--catch-up-timeout", type=float, default=180.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--kafka-port", type=int, default=int(os.environ.get("SOAK_KAFKA_PORT", "39092")))
    p.add_argument("--pg-port", type=int, default=int(os.environ.get("SOAK_PG_PORT", "58432")))
    p.add_argument("--toxiproxy-port", type=int, default=int(os.environ.get("SOAK_TOXIPROXY_PORT", "38474")))
    p.add_argument("--no-write", action="store_true", help=f"do not write the table to {REPORT.name}")
    p.add_argument("--keep-infra", action="store_true", help="leave its Kafka and PostgreSQL running")
    args = p.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    run_dir = ROOT / ".run" / "soak" / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(run_dir)
    soak = Soak(args, run_dir)
    started = dt.datetime.now(dt.UTC)
    try:
        verdict, load, elapsed = asyncio.run(soak.run())
        pg = script("postgres.sh", "url", soak.pg_env).strip()
        version = asyncio.run(pg_version(pg))
    finally:
        if not args.keep_infra:
            for name, env in (("kafka.sh", soak.kafka_env), ("postgres.sh", soak.pg_env)):
                try:
                    script(name, "stop", env)
                except Exception as exc:  # noqa: BLE001 - report, do not mask the run's own error
                    print(f"stopping {name}: {exc}", file=sys.stderr)
    command = "make soak" + (
        ""
        if (args.leads, args.rate, args.kills, args.spell) == (20_000, 10.0, 21, 120.0)
        else f" SOAK_ARGS='--leads {args.leads} --rate {args.rate} --kills {args.kills} --spell {args.spell:.0f}'"
    )
    report = (
        f"Command: `{command}` (seed {args.seed}), started {started:%Y-%m-%d %H:%M} UTC.\n\n"
        f"Machine: {machine(args, version)}.\n\n{table(soak, verdict, load, elapsed)}\n"
    )
    print("\n" + report)
    if not verdict.clean:
        print("FINDINGS:", verdict.summary(limit=20))
    if not args.no_write:
        write_report(report)
        print(f"written to {REPORT.relative_to(ROOT)}")
    return 0 if verdict.clean else 1


if __name__ == "__main__":
    sys.exit(main())
