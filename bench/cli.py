"""`python -m bench`: what `make bench` runs. See docs/performance.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench import infra, phases
from bench.leads import make_leads, schedule
from bench.report import render_markdown

RESULTS = Path(__file__).resolve().parent / "results"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smoke run: every figure, tiny durations, one stack")
    p.add_argument("--rate", type=float, default=100, help="forms/s of the main run (default 100)")
    p.add_argument("--duration", type=float, default=60, help="seconds of load of the main run (default 60)")
    p.add_argument("--drain-records", type=int, default=0, help="records of the drain runs (default: rate x duration)")
    p.add_argument("--ceiling-rate", type=float, default=3000, help="offered req/s of the HTTP ceiling runs")
    p.add_argument("--ceiling-duration", type=float, default=8)
    p.add_argument("--sustained", action=argparse.BooleanOptionalAction, default=True, help="the 500/s run")
    p.add_argument("--sustained-rate", type=float, default=500)
    p.add_argument("--sustained-duration", type=float, default=300)
    p.add_argument("--search", action=argparse.BooleanOptionalAction, default=True, help="the p99 < 1 s search")
    p.add_argument("--search-start", type=float, default=100)
    p.add_argument("--search-max", type=float, default=1600)
    p.add_argument("--search-steps", type=int, default=6)
    p.add_argument("--search-seconds", type=float, default=20)
    p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm progress bars")
    p.add_argument("--database-url", default=None, help="default: deploy/postgres.sh url, database leadrelay_bench")
    p.add_argument("--kafka", default=None, help="default: 127.0.0.1:$KAFKA_PORT")
    args = p.parse_args(argv)
    if args.quick:
        args.rate, args.duration = 100, 3
        args.ceiling_rate, args.ceiling_duration = 800, 2
        args.sustained_duration = 3
        args.search_start, args.search_steps, args.search_seconds = 200, 2, 2
    return args


class Checkpointed(dict[str, Any]):
    """The report, written to a .partial.json after each phase: a run that fails late keeps its figures."""

    def __init__(self, path: Path, **items: Any) -> None:
        super().__init__(**items)
        self.path = path

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self, indent=2, ensure_ascii=False, default=str) + "\n")


def machine(pg_version: str) -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    kafka = "unknown"
    for pid in infra.find_servers()["kafka"]:
        try:
            m = re.search(r"kafka[_-](\d+\.\d+\.\d+)", " ".join(psutil.Process(pid).cmdline()))
            if m:
                kafka = m.group(1)
        except psutil.Error:
            pass
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": model,
        "python": platform.python_version(),
        "kafka": kafka,
        "postgresql": pg_version,
        "os": platform.platform(),
    }


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    database_url = args.database_url or infra.default_database_url()
    kafka = args.kafka or infra.default_kafka()
    await infra.ensure_database(database_url)
    run_id = uuid.uuid4().hex[:6]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    logs = RESULTS / f"{stamp}-logs"
    ctx = phases.Ctx(kafka=kafka, database_url=database_url, seed=args.seed, logs=logs, run_id=run_id)
    ctx.progress = args.progress
    report: dict[str, Any] = Checkpointed(
        RESULTS / f"{stamp}.partial.json",
        started=stamp,
        command="make bench" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else ""),
        args=vars(args) | {"database_url": re.sub(r"//[^@]*@", "//", database_url), "kafka": kafka},
        machine=machine(await infra.pg_version(database_url)),
    )
    started = time.monotonic()
    await ctx.start()
    drain_n = args.drain_records or int(args.rate * args.duration)
    try:
        # ---- Leadrelay: main run, pipeline drain, (quick: search and sustained), HTTP ceiling
        log("starting the stack (five services, one process each)")
        stack, tap, startup = await phases.new_stack(ctx, "m")
        try:
            report["stack_startup_s"] = round(startup, 1)
            report["warm_up"] = await phases.warm_up(ctx, stack, tap)
            log(f"main run: {args.rate:g} forms/s for {args.duration:g} s")
            report["main"] = await phases.leadrelay_http(
                ctx, stack, tap, args.rate, args.duration, "m", drain_timeout=max(60, args.duration * 2), label="main"
            )
            if args.baselines:
                log(f"pipeline drain: {drain_n} FormSubmitted records at once")
                report["drain"] = await phases.leadrelay_drain(ctx, stack, tap, drain_n, "d", timeout=600)
            if args.quick:
                if args.search:
                    report["search"] = await search(ctx, args, stack, tap)
                if args.sustained:
                    report["sustained"] = await sustained(ctx, args, stack, tap)
            # Forms only, offered beyond what a server can take: accepted/s is then its capacity.
            ceiling_reqs = schedule(
                make_leads(int(args.ceiling_rate * args.ceiling_duration), args.seed, "c"),
                args.ceiling_rate,
                args.seed,
                events=False,
            )
            if args.baselines:
                log(f"HTTP ceiling: intake at {args.ceiling_rate:g} forms/s offered")
                report["intake_ceiling"] = await phases.intake_ceiling(
                    ctx, stack, ceiling_reqs, args.ceiling_rate, args.ceiling_duration
                )
        finally:
            report["exit_codes"] = await phases.close_stack(stack, tap)

        if args.baselines:
            # ---- the bare HTTP endpoint, with the very same requests
            log("bare FastAPI endpoint")
            main_reqs = schedule(make_leads(int(args.rate * args.duration), args.seed, "m"), args.rate, args.seed)
            report["bare"] = await phases.bare_http(
                ctx,
                [
                    ("bare main", main_reqs, args.rate, args.duration),
                    ("bare ceiling", ceiling_reqs, args.ceiling_rate, args.ceiling_duration),
                ],
            )
            # ---- relay chains: the same FormSubmitted records, open loop at the main rate, then drained
            main_leads = make_leads(int(args.rate * args.duration), args.seed, "m")
            at = [lead.index / args.rate for lead in main_leads]
            for mode in ("plain", "pg"):
                log(f"baseline relays ({mode})")
                chain = phases.Chain(mode, f"bench{run_id}{mode}")
                try:
                    startup = await chain.start(ctx)
                    await chain.run(ctx, make_leads(20, args.seed, "warm"), None, 60, "warm-up")
                    r = {"startup_s": round(startup, 1)}
                    r["open_loop"] = await chain.run(ctx, main_leads, at, max(60, args.duration * 2), "open loop")
                    r["drain"] = await chain.run(ctx, make_leads(drain_n, args.seed, "d"), None, 600, "drain")
                    report[f"relay_{mode}"] = r
                finally:
                    await chain.stop(ctx)

        if not args.quick:
            if args.search:
                report["search"] = await search(ctx, args, None, None)
            if args.sustained:
                log("sustained run: starting a fresh stack")
                stack, tap, _ = await phases.new_stack(ctx, "s")
                try:
                    await phases.warm_up(ctx, stack, tap)
                    report["sustained"] = await sustained(ctx, args, stack, tap)
                finally:
                    await phases.close_stack(stack, tap)
    finally:
        await ctx.stop()
    report["total_s"] = round(time.monotonic() - started, 1)
    return report


async def sustained(ctx: phases.Ctx, args: argparse.Namespace, stack: infra.Stack, tap: Any) -> dict[str, Any]:
    log(f"sustained: {args.sustained_rate:g} forms/s for {args.sustained_duration:g} s")
    return await phases.leadrelay_http(
        ctx,
        stack,
        tap,
        args.sustained_rate,
        args.sustained_duration,
        "s",
        drain_timeout=max(60.0, min(300.0, args.sustained_duration)),
        label="sustained",
    )


def passes(r: dict[str, Any]) -> bool:
    accepted = r["statuses"].get("202", 0) / max(1, r["requests"])
    p99 = r["e2e_from_schedule_ms"].get("p99")
    return bool(r["complete"] and accepted >= 0.99 and p99 is not None and p99 < 1000)


async def search(ctx: phases.Ctx, args: argparse.Namespace, stack: Any, tap: Any) -> dict[str, Any]:
    """Highest forms/s whose p99 (scheduled send to assignment read) stays under 1 s: doubling from
    --search-start until a step fails, then bisection; at most --search-steps short runs."""
    steps: list[dict[str, Any]] = []
    lo: float | None = None
    hi: float | None = None
    r = args.search_start
    for i in range(args.search_steps):
        log(f"search step {i + 1}/{args.search_steps}: {r:g} forms/s for {args.search_seconds:g} s")
        own = stack is None
        s, t = (stack, tap) if not own else (None, None)
        if own:
            s, t, _ = await phases.new_stack(ctx, f"q{i}")
        try:
            if own:
                await phases.warm_up(ctx, s, t)
            res = await phases.leadrelay_http(
                ctx, s, t, r, args.search_seconds, "q" + "abcdefghij"[i], drain_timeout=60, label=f"search {r:g}/s"
            )
        finally:
            if own:
                await phases.close_stack(s, t)
        ok = passes(res)
        steps.append(
            {
                "offered_forms_per_s": r,
                "pass": ok,
                "accepted_forms_per_s": res["accepted_forms_per_s"],
                "assigned_per_s": res["assigned_per_s"],
                "complete": res["complete"],
                "p99_from_schedule_ms": res["e2e_from_schedule_ms"].get("p99"),
                "p99_from_202_ms": res["e2e_from_202_ms"].get("p99"),
                "statuses": res["statuses"],
            }
        )
        if ok:
            lo = r
        else:
            hi = r
        if lo is not None and hi is not None and hi / lo < 1.15:
            break
        if hi is None:
            if r >= args.search_max:
                break
            r = min(r * 2, args.search_max)
        elif lo is None:
            r = r / 2
        else:
            mid = 5 * round((lo + hi) / 10)  # a multiple of 5 strictly between the two, else stop
            if not lo < mid < hi:
                break
            r = mid
    return {
        "criterion": "p99 of scheduled send -> assignment read < 1000 ms, >= 99% 202s, all assigned",
        "steps": steps,
        "highest_passing_forms_per_s": lo,
        "lowest_failing_forms_per_s": hi,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # aiokafka logs an error for every deleted topic its metadata still lists: noise here.
    logging.getLogger("aiokafka.cluster").setLevel(logging.CRITICAL)
    try:
        import uvloop

        report = uvloop.run(run(args))
    except ImportError:
        report = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = report["started"]
    (RESULTS / f"{stamp}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
    md = render_markdown(report)
    (RESULTS / f"{stamp}.md").write_text(md)
    (RESULTS / f"{stamp}.partial.json").unlink(missing_ok=True)
    print(md)
    log(f"written bench/results/{stamp}.json and .md ({report['total_s']} s in all)")
    return 0
