"""The measured runs: Leadrelay through HTTP, Leadrelay's pipeline drained, the baseline relay
chains, the bare HTTP endpoint. Each returns a plain dict for the JSON report."""

from __future__ import annotations

import asyncio
import functools
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench import infra
from bench.leads import Lead, Request, make_leads, schedule
from bench.load import Clock, Result, drive
from bench.tap import Seen, Tap
from leadrelay.events import Record
from leadrelay.rules import Rules, load_rules

INTAKE, SCORED, ASSIGNED = "leads.intake", "leads.scored", "leads.assigned"
T_FORM = "leadrelay.intake.form_submitted.v1"
T_SCORED = "leadrelay.scoring.lead_scored.v1"
T_QUALIFIED = "leadrelay.scoring.lead_qualified.v1"
T_ASSIGNED = "leadrelay.routing.lead_assigned.v1"
NAMESPACE = uuid.UUID("6f1b6d0e-6c1e-4d8e-9a55-3b7f2c9d0a11")  # leadrelay.settings' default lead_id_namespace


@dataclass
class Ctx:
    kafka: str
    database_url: str
    seed: int
    logs: Path
    run_id: str
    progress: bool = True
    clock: Clock = field(default_factory=Clock)
    producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # The same producer settings as Leadrelay's bus.
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.kafka, enable_idempotence=True, acks="all", linger_ms=5, request_timeout_ms=30000
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()


# ------------------------------------------------------------------ statistics


def dist(values: list[float]) -> dict[str, Any]:
    """Percentiles (nearest rank) in milliseconds."""
    if not values:
        return {"n": 0}
    v = sorted(values)

    def q(p: float) -> float:
        return round(v[min(len(v) - 1, max(0, int(round(p / 100 * len(v))) - 1))] * 1000, 1)

    return {
        "n": len(v),
        "p50": q(50),
        "p95": q(95),
        "p99": q(99),
        "max": round(v[-1] * 1000, 1),
        "mean": round(sum(v) / len(v) * 1000, 1),
    }


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


# ------------------------------------------------------------------ records


def form_record(lead: Lead) -> tuple[str, Record]:
    """The FormSubmitted record intake would publish for this lead's form (intake's own use case)."""
    from intake.service import Intake
    from leadrelay.clock import SystemClock

    env = Intake(_rules(), NAMESPACE, SystemClock()).form_submission(lead.form_id, lead.fields)
    return env.subject, env.to_record()


@functools.cache
def _rules() -> Rules:
    return load_rules(Path(__file__).resolve().parents[1] / "config" / "example.yaml")


async def produce(
    ctx: Ctx, topic: str, records: list[Record], at: list[float] | None, start: float
) -> list[tuple[float, float]]:
    """Publish records (open loop at ``start + at[i]``, or all at once); returns (scheduled, acked)."""
    assert ctx.producer is not None
    producer = ctx.producer
    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(records)

    async def one(i: int, scheduled: float) -> None:
        r = records[i]
        try:
            fut = await producer.send(topic, value=r.value, key=r.key, headers=list(r.headers))
            await asyncio.wait_for(fut, 60)
            out[i] = (scheduled, ctx.clock.now())
        except Exception:
            out[i] = (scheduled, 0.0)

    if at is None:  # a backlog, as fast as the producer goes: no task per record
        futures = []
        for r in records:
            futures.append(await producer.send(topic, value=r.value, key=r.key, headers=list(r.headers)))
        done = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 120)
        acked = ctx.clock.now()
        return [(start, 0.0 if isinstance(d, BaseException) else acked) for d in done]
    tasks = []
    for i in range(len(records)):
        scheduled = start + (at[i] if at is not None else 0.0)
        delay = scheduled - ctx.clock.now()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled if at is not None else ctx.clock.now())))
    await asyncio.gather(*tasks)
    return out


# ------------------------------------------------------------------ Leadrelay


async def new_stack(ctx: Ctx, name: str) -> tuple[infra.Stack, Tap, float]:
    prefix = f"bench{ctx.run_id}{name}"
    stack = infra.Stack(prefix=prefix, database_url=ctx.database_url, kafka=ctx.kafka, logs=ctx.logs / prefix)
    try:
        startup = await stack.start()
    except Exception:
        stack.stop()
        await stack.cleanup()
        raise
    tap = Tap(ctx.kafka, [stack.topic_prefix + t for t in (INTAKE, SCORED, ASSIGNED)])
    await tap.start()
    return stack, tap, startup


async def close_stack(stack: infra.Stack, tap: Tap) -> dict[str, Any]:
    await tap.stop()
    await asyncio.to_thread(stack.stop)
    codes = {s: p.popen.returncode for s, p in stack.procs.items()}
    await stack.cleanup()
    return codes


async def snapshot(ctx: Ctx, stack: infra.Stack, tap: Tap) -> dict[str, Any]:
    return {
        "t": ctx.clock.now(),
        "cpu": stack.cpu(),
        "servers": infra.servers_cpu(),
        "bench_cpu": time.process_time(),
        "batches": await stack.batches(),
        "pg": await infra.pg_counters(ctx.database_url),
        "tap": dict(tap.counts),
    }


async def warm_up(ctx: Ctx, stack: infra.Stack, tap: Tap, n: int = 20) -> dict[str, Any]:
    """A few leads through the whole pipeline: the consumers have joined their groups and
    every connection pool is open before anything is measured."""
    leads = make_leads(n, ctx.seed, "warm")
    reqs = schedule(leads, 20.0, ctx.seed)
    results = await drive(
        stack.url("intake"), reqs, ctx.clock, ctx.clock.now() + 0.1, progress=False, headers=stack.api_key("tracking")
    )
    ids = {r.lead_id for r in results if r.ok and r.request.qualifying}
    ok = await tap.wait_keys(stack.topic_prefix + ASSIGNED, T_ASSIGNED, ids, timeout=90)
    if not ok:
        raise RuntimeError("warm-up leads were not assigned within 90 s:\n" + stack.procs["routing"].tail())
    return {"leads": n, "assigned": len(ids)}


async def leadrelay_http(
    ctx: Ctx,
    stack: infra.Stack,
    tap: Tap,
    offered: float,
    duration: float,
    tag: str,
    drain_timeout: float,
    label: str,
) -> dict[str, Any]:
    """Open-loop form submissions (and behaviour events) through intake at ``offered`` forms/s."""
    n = max(1, int(offered * duration))
    leads = make_leads(n, ctx.seed, tag)
    reqs = schedule(leads, offered, ctx.seed)
    p = stack.topic_prefix
    before = await snapshot(ctx, stack, tap)
    start = ctx.clock.now() + 0.2
    results = await drive(
        stack.url("intake"),
        reqs,
        ctx.clock,
        start,
        label=label,
        progress=ctx.progress,
        headers=stack.api_key("tracking"),
    )
    load_end = ctx.clock.now()
    lag_load_end = await infra.consumer_lag(ctx.kafka, infra.GROUPS, p)
    qualifying = {r.lead_id: r for r in results if r.ok and r.request.qualifying}
    complete = await tap.wait_keys(p + ASSIGNED, T_ASSIGNED, set(qualifying), timeout=drain_timeout, idle=60)
    drain_end = ctx.clock.now()
    lag_end = await infra.consumer_lag(ctx.kafka, infra.GROUPS, p)
    await asyncio.sleep(1.5)  # PostgreSQL flushes its statistics of idle connections within ~1 s
    after = await snapshot(ctx, stack, tap)
    out = await http_figures(results, start, label, offered, duration)
    out.update(
        await pipeline_figures(ctx, stack, tap, results, qualifying, start, before, after, lag_load_end, lag_end)
    )
    out["complete"] = complete
    out["load_seconds"] = round(load_end - start, 2)
    out["drain_seconds"] = round(drain_end - load_end, 2)
    dead = stack.check_alive()
    if dead:
        out["exited"] = dead
    return out


async def http_figures(
    results: list[Result], start: float, label: str, offered: float, duration: float
) -> dict[str, Any]:
    ok = [r for r in results if r.ok]
    forms_ok = [r for r in ok if r.request.step == 0]
    last_done = max((r.done for r in ok), default=start)
    last_form = max((r.done for r in forms_ok), default=start)
    statuses: dict[str, int] = {}
    for r in results:
        key = str(r.status) if r.status else "no answer"
        statuses[key] = statuses.get(key, 0) + 1
    span = last_done - start
    return {
        "label": label,
        "offered_forms_per_s": offered,
        "duration_s": duration,
        "forms": sum(1 for r in results if r.request.step == 0),
        "requests": len(results),
        "statuses": statuses,
        # Forms over the forms' window; all requests over theirs (behaviour events trail by up to ~2 s).
        "accepted_forms_per_s": rate(len(forms_ok), last_form - start),
        "accepted_requests_per_s": rate(len(ok), span),
        "http_latency_from_schedule_ms": dist([r.done - r.scheduled for r in ok]),
        "http_latency_from_send_ms": dist([r.done - r.sent for r in ok]),
        "client_send_lag_ms": dist([max(0.0, r.sent - r.scheduled) for r in results if r.sent]),
    }


async def pipeline_figures(
    ctx: Ctx,
    stack: infra.Stack,
    tap: Tap,
    results: list[Result],
    qualifying: dict[str, Result],
    start: float,
    before: dict[str, Any],
    after: dict[str, Any],
    lag_load_end: dict[str, int | None],
    lag_end: dict[str, int | None],
) -> dict[str, Any]:
    p = stack.topic_prefix
    intake_by_id = tap.by_id[p + INTAKE]
    qualified = tap.keyed(p + SCORED, T_QUALIFIED)
    assigned = tap.keyed(p + ASSIGNED, T_ASSIGNED)
    got: dict[str, tuple[Result, Seen | None, Seen | None, Seen]] = {}
    for lead_id, res in qualifying.items():
        a = assigned.get(lead_id)
        if a is not None:
            got[lead_id] = (res, intake_by_id.get(res.event_id), qualified.get(lead_id), a)
    last_assigned = max((a.arrived for _, _, _, a in got.values()), default=start)
    window = max(last_assigned, max((r.done for r in results if r.ok), default=start)) - start

    # The three consumers' inboxes say when each event's transaction started (uow.now).
    schema = stack.prefix + "_"
    scoring_in = await inbox_times(ctx, schema + "scoring", [r.event_id for r, *_ in got.values()])
    routing_in = await inbox_times(ctx, schema + "routing", [q.event_id for _, _, q, _ in got.values() if q])
    sla_in = await inbox_times(ctx, schema + "sla_monitor", [a.event_id for *_, a in got.values()])
    clocks = await infra.fetch(
        ctx.database_url, f'SELECT count(*) AS n FROM "{schema}sla_monitor".clocks WHERE lead_id = ANY($1)', list(got)
    )

    hop: dict[str, list[float]] = {k: [] for k in ("scoring", "scoring_wait", "scoring_work_relay", "routing")}
    hop |= {k: [] for k in ("routing_wait", "routing_work_relay", "delivery_to_bench", "sla_monitor")}
    for res, i, q, a in got.values():
        if i and q:
            hop["scoring"].append(q.ts - i.ts)
            if res.event_id in scoring_in:
                hop["scoring_wait"].append(scoring_in[res.event_id] - i.ts)
                hop["scoring_work_relay"].append(q.ts - scoring_in[res.event_id])
        if q:
            hop["routing"].append(a.ts - q.ts)
            if q.event_id in routing_in:
                hop["routing_wait"].append(routing_in[q.event_id] - q.ts)
                hop["routing_work_relay"].append(a.ts - routing_in[q.event_id])
        hop["delivery_to_bench"].append(a.arrived - a.ts)
        if a.event_id in sla_in:
            hop["sla_monitor"].append(sla_in[a.event_id] - a.ts)

    seconds = max(window, 1e-9)
    batches = {
        g: after["batches"].get(g, 0) - before["batches"].get(g, 0)
        for g in after["batches"]
        if not g.startswith("relayed:")
    }
    events = {t.removeprefix(p): after["tap"].get(t, 0) - before["tap"].get(t, 0) for t in after["tap"]}
    total_events = sum(events.values())
    xact = after["pg"].get("xact_commit", 0) - before["pg"].get("xact_commit", 0)
    return {
        "expected_assignments": len(qualifying),
        "assigned": len(got),
        "missing_assignments": len(qualifying) - len(got),
        "assigned_per_s": rate(len(got), seconds),
        "window_s": round(window, 2),
        "e2e_from_202_ms": dist([a.arrived - r.done for r, _, _, a in got.values()]),
        "e2e_from_schedule_ms": dist([a.arrived - r.scheduled for r, _, _, a in got.values()]),
        "hops_ms": {
            "intake (scheduled send to 202)": dist([r.done - r.scheduled for r in results if r.ok]),
            **{k: dist(v) for k, v in hop.items()},
        },
        "sla_clocks_created": int(clocks[0]["n"]) if clocks else 0,
        "lag_at_load_end": lag_load_end,
        "lag_at_end": lag_end,
        "cpu_s": {s: round(after["cpu"][s] - before["cpu"].get(s, 0), 2) for s in after["cpu"]},
        "cpu_s_servers": {s: round(after["servers"][s] - before["servers"].get(s, 0), 2) for s in after["servers"]},
        "cpu_s_bench": round(after["bench_cpu"] - before["bench_cpu"], 2),
        "peak_rss_mib": {s: round(v, 1) if v else None for s, v in stack.peak_rss().items()},
        "events_written": events,
        "events_per_s": rate(total_events, seconds),
        "offset_commits": batches,
        "offset_commits_per_s": rate(int(sum(batches.values())), seconds),
        "pg_xact_commit": xact,
        "pg_xact_per_s": rate(xact, seconds),
        "pg_xact_per_event": round(xact / total_events, 3) if total_events else None,
        "offset_commits_per_event": round(sum(batches.values()) / total_events, 3) if total_events else None,
    }


async def inbox_times(ctx: Ctx, schema: str, ids: list[str]) -> dict[str, float]:
    if not ids:
        return {}
    rows = await infra.fetch(
        ctx.database_url, f'SELECT event_id, processed_at FROM "{schema}".inbox WHERE event_id = ANY($1)', ids
    )
    return {r["event_id"]: r["processed_at"].timestamp() for r in rows}


async def leadrelay_drain(ctx: Ctx, stack: infra.Stack, tap: Tap, n: int, tag: str, timeout: float) -> dict[str, Any]:
    """Pipeline capacity without HTTP: ``n`` FormSubmitted records written to leads.intake while the
    consumers are paused (what intake would publish), then the time from their resumption until
    scoring scored all and routing assigned the qualified ones (the handraisers and form MQLs:
    no behaviour events here)."""
    leads = make_leads(n, ctx.seed, tag)
    recs = [form_record(lead) for lead in leads]
    p = stack.topic_prefix
    expect_assigned = {lid for (lid, _), lead in zip(recs, leads, strict=True) if lead.qualifying_step == 0}
    all_ids = {lid for lid, _ in recs}
    before = await snapshot(ctx, stack, tap)
    # The consumers are paused (SIGSTOP) while the backlog is written, so that the time measured
    # is theirs and not the bench producer's; they resume all at once (SIGCONT).
    paused = [stack.procs[s].pid for s in ("scoring", "routing", "sla-monitor", "feedback")]
    t = ctx.clock.now()
    with infra.paused(paused):
        acks = await produce(ctx, p + INTAKE, [r for _, r in recs], None, t)
        produced = ctx.clock.now()
        start = ctx.clock.now()
    ok1 = await tap.wait_keys(p + SCORED, T_SCORED, all_ids, timeout=timeout, idle=60)
    ok2 = await tap.wait_keys(p + ASSIGNED, T_ASSIGNED, expect_assigned, timeout=timeout, idle=60)
    scored = tap.keyed(p + SCORED, T_SCORED)
    assigned = tap.keyed(p + ASSIGNED, T_ASSIGNED)
    ends = [scored[k].arrived for k in all_ids if k in scored] + [
        assigned[k].arrived for k in expect_assigned if k in assigned
    ]
    end = max(ends, default=start)
    await asyncio.sleep(1.5)
    after = await snapshot(ctx, stack, tap)
    xact = after["pg"].get("xact_commit", 0) - before["pg"].get("xact_commit", 0)
    batches = {g: after["batches"].get(g, 0) - before["batches"].get(g, 0) for g in after["batches"]}
    return {
        "records": n,
        "produce_seconds": round(produced - t, 2),
        "acked": sum(1 for _, a in acks if a),
        "complete": ok1 and ok2,
        "scored": sum(1 for k in all_ids if k in scored),
        "assigned": sum(1 for k in expect_assigned if k in assigned),
        "expected_assignments": len(expect_assigned),
        "seconds": round(end - start, 2),
        "submissions_per_s": rate(n, end - start),
        "cpu_s": {s: round(after["cpu"][s] - before["cpu"].get(s, 0), 2) for s in after["cpu"]},
        "pg_xact_commit": xact,
        "offset_commits": {g: v for g, v in batches.items() if not g.startswith("relayed:")},
    }


# ------------------------------------------------------------------ baseline relay chains


@dataclass
class Chain:
    """topic0 -> relay -> topic1 -> relay -> topic2: as many hops as intake -> scoring -> routing."""

    mode: str
    prefix: str
    procs: list[infra.Proc] = field(default_factory=list)
    tap: Tap | None = None

    def topic(self, i: int) -> str:
        return f"{self.prefix}.t{i}"

    async def start(self, ctx: Ctx) -> float:
        started = time.monotonic()
        await infra.create_topics(ctx.kafka, {self.topic(i): 6 for i in range(3)})
        env = dict(os.environ)
        for hop in (1, 2):
            args = ["-m", "bench.relay", "--mode", self.mode, "--kafka", ctx.kafka]
            args += ["--source", self.topic(hop - 1), "--sink", self.topic(hop), "--group", f"{self.prefix}.hop{hop}"]
            if self.mode == "pg":
                args += ["--database-url", ctx.database_url, "--schema", f"{self.prefix}_hop{hop}"]
            self.procs.append(infra.spawn(f"hop{hop}", args, env, ctx.logs / self.prefix))
        deadline = time.monotonic() + 90
        for proc in self.procs:
            while "ready" not in proc.tail(5):
                if proc.popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"relay {proc.name} did not start:\n{proc.tail()}")
                await asyncio.sleep(0.2)
        self.tap = Tap(ctx.kafka, [self.topic(i) for i in range(3)])
        await self.tap.start()
        return time.monotonic() - started

    async def stop(self, ctx: Ctx) -> None:
        if self.tap is not None:
            await self.tap.stop()
        for proc in self.procs:
            await asyncio.to_thread(infra.stop, proc)
        await infra.delete_topics(ctx.kafka, self.prefix + ".")
        await infra.drop_schemas(ctx.database_url, self.prefix + "_")

    def cpu(self) -> dict[str, float]:
        return {p.name: infra.cpu_seconds(p.pid) for p in self.procs}

    async def run(
        self, ctx: Ctx, leads: list[Lead], at: list[float] | None, timeout: float, label: str
    ) -> dict[str, Any]:
        """The leads' FormSubmitted records through the chain, open loop at ``at`` (or all at once)."""
        assert self.tap is not None
        recs = [form_record(lead)[1] for lead in leads]
        ids = [r.header("ce_id") or "" for r in recs]
        cpu0, pg0 = self.cpu(), await infra.pg_counters(ctx.database_url)
        if at is None:  # drain: as for Leadrelay, the backlog is written while the relays are paused
            with infra.paused([p.pid for p in self.procs]):
                acks = await produce(ctx, self.topic(0), recs, None, ctx.clock.now())
                start = ctx.clock.now()
        else:
            start = ctx.clock.now() + 0.2
            acks = await produce(ctx, self.topic(0), recs, at, start)
        complete = await self.tap.wait_ids(self.topic(2), set(ids), timeout=timeout, idle=60)
        await asyncio.sleep(1.5)
        cpu1, pg1 = self.cpu(), await infra.pg_counters(ctx.database_url)
        t0, t1, t2 = (self.tap.by_id[self.topic(i)] for i in range(3))
        arrived = [(eid, s, a) for eid, (s, a) in zip(ids, acks, strict=True) if eid in t2 and a]
        end = max((t2[e].arrived for e, _, _ in arrived), default=start)
        return {
            "label": label,
            "records": len(recs),
            "delivered": len(arrived),
            "complete": complete,
            "seconds": round(end - start, 2),
            "delivered_per_s": rate(len(arrived), end - start),
            "e2e_from_ack_ms": dist([t2[e].arrived - a for e, _, a in arrived]),
            "e2e_from_schedule_ms": dist([t2[e].arrived - s for e, s, _ in arrived]),
            "hop1_ms": dist([t1[e].ts - t0[e].ts for e, _, _ in arrived if e in t1 and e in t0]),
            "hop2_ms": dist([t2[e].ts - t1[e].ts for e, _, _ in arrived if e in t1]),
            "cpu_s": {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1},
            "peak_rss_mib": {p.name: infra.peak_rss_mib(p.pid) for p in self.procs},
            "pg_xact_commit": pg1.get("xact_commit", 0) - pg0.get("xact_commit", 0),
        }


# ------------------------------------------------------------------ bare HTTP


async def bare_http(ctx: Ctx, runs: list[tuple[str, list[Request], float, float]]) -> dict[str, Any]:
    port = infra.free_port()
    proc = infra.spawn("bare", ["-m", "bench.bare", "--port", str(port)], dict(os.environ), ctx.logs / "bare", port)
    out: dict[str, Any] = {}
    try:
        await infra.wait_http(proc, "/readyz", timeout=60)
        for label, reqs, offered, duration in runs:
            cpu0 = infra.cpu_seconds(proc.pid)
            start = ctx.clock.now() + 0.2
            results = await drive(
                f"http://127.0.0.1:{port}", reqs, ctx.clock, start, label=label, progress=ctx.progress
            )
            out[label] = await http_figures(results, start, label, offered, duration)
            out[label]["cpu_s"] = round(infra.cpu_seconds(proc.pid) - cpu0, 2)
        out["peak_rss_mib"] = infra.peak_rss_mib(proc.pid)
    finally:
        await asyncio.to_thread(infra.stop, proc)
    return out


async def intake_ceiling(
    ctx: Ctx, stack: infra.Stack, reqs: list[Request], offered: float, duration: float
) -> dict[str, Any]:
    """Intake alone (the other services are stopped first, as the bare app runs alone too)."""
    for s in ("scoring", "routing", "sla-monitor", "feedback"):
        await asyncio.to_thread(infra.stop, stack.procs[s])
    cpu0 = infra.cpu_seconds(stack.procs["intake"].pid)
    start = ctx.clock.now() + 0.2
    results = await drive(
        stack.url("intake"),
        reqs,
        ctx.clock,
        start,
        label="intake ceiling",
        progress=ctx.progress,
        headers=stack.api_key("tracking"),
    )
    out = await http_figures(results, start, "intake ceiling", offered, duration)
    out["cpu_s"] = round(infra.cpu_seconds(stack.procs["intake"].pid) - cpu0, 2)
    return out
