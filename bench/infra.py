"""The stack under test and the servers it runs on: processes, topics, schemas, counters.

Every service runs as its own ``python -m leadrelay.cli serve SERVICE`` process on
the real broker and database, isolated by a unique topic/group prefix and schema
prefix (as tests/e2e/distributed.py does). Everything here is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

REPO = Path(__file__).resolve().parent.parent


def _key() -> str:
    from leadrelay.auth import generate_key

    return generate_key()


SERVICES = ("intake", "scoring", "routing", "sla-monitor", "feedback")
# Consumer groups of the services (the prefix is added), and what they read.
GROUPS = {
    "scoring": ("leads.intake", "leads.feedback", "leads.assigned"),
    "routing": ("leads.scored", "leads.feedback"),
    "sla-monitor": ("leads.assigned", "leads.feedback"),
    "feedback": ("leads.assigned",),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_database_url() -> str:
    """``deploy/postgres.sh url``, with the database renamed to leadrelay_bench (see ensure_database)."""
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url
    script = str(REPO / "deploy" / "postgres.sh")
    out = subprocess.run(  # noqa: S603
        ["bash", script, "url"],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    return re.sub(r"/[^/]+$", "/leadrelay_bench", out)


def default_kafka() -> str:
    return os.environ.get("BENCH_KAFKA", f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}")


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def ensure_database(url: str) -> None:
    """Create the bench's own database on the server if needed, so that pg_stat_database
    counts only the bench's transactions (other work on the server uses other databases)."""
    name = url.rsplit("/", 1)[1]
    admin = dsn(url).rsplit("/", 1)[0] + "/postgres"
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_schemas(url: str, prefix: str) -> None:
    conn = await asyncpg.connect(dsn(url), timeout=10)
    try:
        rows = await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", prefix + "%")
        for r in rows:
            await conn.execute(f'DROP SCHEMA "{r["nspname"]}" CASCADE')
    finally:
        await conn.close()


async def pg_counters(url: str) -> dict[str, Any]:
    """Committed transactions of the bench's database (pg_stat_database, flushed within ~1 s)."""
    conn = await asyncpg.connect(dsn(url), timeout=10)
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, blks_read"
            " FROM pg_stat_database WHERE datname = current_database()"
        )
        return dict(row) if row else {}
    finally:
        await conn.close()


async def pg_version(url: str) -> str:
    conn = await asyncpg.connect(dsn(url), timeout=10)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn(url), timeout=10)
    try:
        return list(await conn.fetch(query, *args, timeout=120))
    finally:
        await conn.close()


# ------------------------------------------------------------------ Kafka


async def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=60000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(t, n, 1) for t, n in topics.items() if t not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        # Wait until the broker knows every new topic's leaders (bounded).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            meta = await admin.describe_topics(list(topics))
            if all(t.get("error_code", 0) == 0 and t.get("partitions") for t in meta):
                break
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=60000)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
        groups = [g[0] for g in await admin.list_consumer_groups() if str(g[0]).startswith(prefix)]
        if groups:
            with contextlib.suppress(Exception):  # best effort: groups expire on their own
                await admin.delete_consumer_groups(groups)
    finally:
        await admin.close()


async def consumer_lag(bootstrap: str, groups: dict[str, tuple[str, ...]], prefix: str) -> dict[str, int | None]:
    """Per group: end offsets minus committed offsets, summed over its topics' partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out: dict[str, int | None] = {}
    try:
        for group, topics in groups.items():
            try:
                committed = await admin.list_consumer_group_offsets(prefix + group)
                tps = [
                    TopicPartition(prefix + t, p)
                    for t in topics
                    for p in (consumer.partitions_for_topic(prefix + t) or await _partitions(consumer, prefix + t))
                ]
                ends = await consumer.end_offsets(tps)
                lag = 0
                for tp in tps:
                    c = committed.get(tp)
                    lag += max(0, ends[tp] - (c.offset if c is not None and c.offset >= 0 else 0))
                out[group] = lag
            except Exception:
                out[group] = None
    finally:
        await consumer.stop()
        await admin.close()
    return out


async def _partitions(consumer: Any, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
    return consumer.partitions_for_topic(topic) or set()


# ------------------------------------------------------------------ processes


def _proc_tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in _proc_tree(pid):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def peak_rss_mib(pid: int) -> float | None:
    """The kernel's high-water mark of resident memory (VmHWM), else the current RSS."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return psutil.Process(pid).memory_info().rss / 2**20
    except (OSError, psutil.Error):
        return None


def find_servers() -> dict[str, list[int]]:
    """PIDs of the Kafka broker and the PostgreSQL server (read-only: for their CPU time)."""
    out: dict[str, list[int]] = {"kafka": [], "postgres": []}
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if "kafka.Kafka" in cmd:
                out["kafka"].append(p.pid)
            elif p.info["name"] == "postgres":
                out["postgres"].append(p.pid)
        except psutil.Error:
            pass
    return out


def servers_cpu() -> dict[str, float]:
    """CPU seconds used so far by the broker and by every PostgreSQL process (the whole server:
    other databases' work counts too)."""
    out = {}
    for name, pids in find_servers().items():
        total = 0.0
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system + getattr(t, "children_user", 0) + getattr(t, "children_system", 0)
            except psutil.Error:
                pass
        out[name] = total
    return out


@contextlib.contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    """SIGSTOP the given processes (the bench's own children) for the block, SIGCONT after.
    Keep the block well under the consumers' session timeout (10 s)."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


SPAM_LIMITS = ("RATE_PER_ADDRESS", "BURST_PER_ADDRESS", "RATE_PER_SOURCE", "BURST_PER_SOURCE")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int | None = None
    log: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 30) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def spawn(name: str, args: list[str], env: dict[str, str], logs: Path, port: int | None = None) -> Proc:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen(  # noqa: S603
            [sys.executable, *args], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        )
    return Proc(name, popen, port, log)


def stop(proc: Proc, timeout: float = 30) -> int | None:
    if proc.popen.poll() is None:
        proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(10)
    return proc.popen.returncode


async def wait_http(proc: Proc, path: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=3) as client:
        while True:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
            try:
                if (await client.get(f"http://127.0.0.1:{proc.port}{path}")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} not ready in {timeout}s:\n{proc.tail()}")
            await asyncio.sleep(0.25)


@dataclass
class Stack:
    """The five services, each its own process, isolated by ``prefix``."""

    prefix: str
    database_url: str
    kafka: str
    logs: Path
    config: Path = REPO / "config" / "example.yaml"
    extra_env: dict[str, str] = field(default_factory=dict)
    # How a service is started: `python <launcher> serve SERVICE --port P`.
    launcher: list[str] = field(default_factory=lambda: ["-m", "leadrelay.cli"])
    procs: dict[str, Proc] = field(default_factory=dict)
    # Sign-in: a signing key and an API key per source of the rules, made for this run.
    signing_key: str = field(default_factory=lambda: _key())
    api_keys: dict[str, str] = field(default_factory=dict)
    sources: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from leadrelay.rules import load_rules

        self.sources = {s.id: s for s in load_rules(self.config).sources}
        self.api_keys = {s: _key() for s in self.sources}

    def api_key(self, role: str) -> dict[str, str]:
        """The header of the first source with ``role`` (tracking: behaviour events; monitoring: /metrics)."""
        source = next((s for s in self.sources.values() if s.role == role), None)
        if source is None:
            raise RuntimeError(f"{self.config} has no source with role {role}: the bench needs one")
        return {"X-API-Key": self.api_keys[source.id]}

    @property
    def topic_prefix(self) -> str:
        return f"{self.prefix}."

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.procs[service].port}"

    async def start(self) -> float:
        """Topics, then every service; returns the seconds until all five were ready."""
        from leadrelay.events import all_topics

        started = time.monotonic()
        await create_topics(self.kafka, {self.topic_prefix + t: n for t, n in all_topics().items()})
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADRELAY_")}
        env.update(
            LEADRELAY_DATABASE_URL=self.database_url,
            LEADRELAY_SCHEMA_PREFIX=f"{self.prefix}_",
            LEADRELAY_KAFKA_BOOTSTRAP_SERVERS=self.kafka,
            LEADRELAY_KAFKA_PREFIX=self.topic_prefix,
            LEADRELAY_CONFIG=str(self.config),
            LEADRELAY_AUTH_SIGNING_KEY=self.signing_key,
            **{self.sources[s].key_env: key for s, key in self.api_keys.items()},
            # The bench's one address stands in for thousands of visitors, and it measures the
            # pipeline, not the spam limits (which would answer most of its forms 429).
            **{f"LEADRELAY_FORM_{limit}": "1000000" for limit in SPAM_LIMITS},
            **self.extra_env,
        )
        for s in SERVICES:
            port = free_port()
            self.procs[s] = spawn(s, [*self.launcher, "serve", s, "--port", str(port)], env, self.logs, port)
        await asyncio.gather(*(wait_http(p, "/readyz") for p in self.procs.values()))
        return time.monotonic() - started

    def stop(self) -> None:
        for p in self.procs.values():
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            stop(p)

    async def cleanup(self) -> None:
        await drop_schemas(self.database_url, f"{self.prefix}_")
        await delete_topics(self.kafka, self.topic_prefix)

    async def batches(self) -> dict[str, float]:
        """Per consumer group: batches handled so far (one offset commit each), from /metrics."""
        out: dict[str, float] = {}
        async with httpx.AsyncClient(timeout=10, headers=self.api_key("monitoring")) as client:
            for s in SERVICES:
                try:
                    text = (await client.get(self.url(s) + "/metrics")).text
                except httpx.HTTPError:
                    continue
                for m in re.finditer(r'^leadrelay_batch_seconds_count\{group="([^"]+)"\} ([0-9.e+]+)$', text, re.M):
                    out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
                for m in re.finditer(r'^leadrelay_outbox_relayed_total\{service="([^"]+)"\} ([0-9.e+]+)$', text, re.M):
                    out["relayed:" + m.group(1)] = float(m.group(2))
        return out

    def cpu(self) -> dict[str, float]:
        return {s: cpu_seconds(p.pid) for s, p in self.procs.items()}

    def peak_rss(self) -> dict[str, float | None]:
        return {s: peak_rss_mib(p.pid) for s, p in self.procs.items()}

    def check_alive(self) -> list[str]:
        return [s for s, p in self.procs.items() if p.popen.poll() is not None]
