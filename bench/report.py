"""The Markdown summary of one run's JSON report."""

from __future__ import annotations

from typing import Any


def _d(d: dict[str, Any] | None) -> str:
    """p50 / p95 / p99 / max in ms."""
    if not d or not d.get("n"):
        return "n/a"
    return f"{d['p50']:g} / {d['p95']:g} / {d['p99']:g} / {d['max']:g}"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "n/a"
    return f"{a / b:.2f}x"


def _lags(lags: dict[str, Any] | None) -> str:
    return ", ".join(f"{g} {v}" for g, v in (lags or {}).items()) or "n/a"


def leadrelay_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    cpu = r.get("cpu_s", {})
    rss = r.get("peak_rss_mib", {})
    return [
        (
            "offered forms/s (requests incl. behaviour events)",
            f"{r['offered_forms_per_s']:g} ({r['requests']} requests in {r['duration_s']:g} s)",
        ),
        ("HTTP statuses", ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())),
        (
            "forms accepted/s (202) / all requests accepted/s",
            f"{r['accepted_forms_per_s']:g} / {r['accepted_requests_per_s']:g}",
        ),
        (
            "leads assigned/s (assigned / expected)",
            f"{r['assigned_per_s']:g} ({r['assigned']} / {r['expected_assignments']})",
        ),
        ("202 -> lead_assigned read, ms p50/p95/p99/max", _d(r["e2e_from_202_ms"])),
        ("scheduled send -> lead_assigned read, ms", _d(r["e2e_from_schedule_ms"])),
        *[(f"hop: {k}, ms", _d(v)) for k, v in r["hops_ms"].items()],
        ("SLA clocks created (2 per assignment)", str(r.get("sla_clocks_created"))),
        ("consumer lag when the load stopped", _lags(r.get("lag_at_load_end"))),
        ("consumer lag at the end", _lags(r.get("lag_at_end"))),
        ("CPU s per process (window)", ", ".join(f"{k} {v:g}" for k, v in cpu.items())),
        (
            "CPU s Kafka broker / PostgreSQL server / bench",
            f"{r['cpu_s_servers'].get('kafka', 0):g} / {r['cpu_s_servers'].get('postgres', 0):g} / {r['cpu_s_bench']:g}",
        ),
        ("peak RSS MiB per service", ", ".join(f"{k} {v:g}" for k, v in rss.items() if v)),
        (
            "events written/s (all Leadrelay topics)",
            f"{r['events_per_s']:g} ({', '.join(f'{k} {v}' for k, v in r['events_written'].items())})",
        ),
        (
            "offset commits/s (batches)",
            f"{r['offset_commits_per_s']:g} ({', '.join(f'{k} {v:g}' for k, v in r['offset_commits'].items())}); {r['offset_commits_per_event']} per event",
        ),
        (
            "PostgreSQL commits/s",
            f"{r['pg_xact_per_s']:g} ({r['pg_xact_commit']} in {r['window_s']:g} s); {r['pg_xact_per_event']} per event",
        ),
    ]


def render_markdown(rep: dict[str, Any]) -> str:
    m = rep["machine"]
    out = [f"# Leadrelay benchmark {rep['started']}", ""]
    out.append(
        f"Machine: {m['cores']} cores ({m['cpu_model']}), {m['ram_gib']} GiB RAM; Python {m['python']}, "
        f"Kafka {m['kafka']}, PostgreSQL {m['postgresql']}. Command: `{rep['command']}`. "
        f"Total {rep.get('total_s')} s; stack start-up {rep.get('stack_startup_s')} s."
    )
    out.append("")
    if "main" in rep:
        out += ["## Main run (open loop through intake's HTTP API)", "", "| figure | value |", "| --- | --- |"]
        out += [f"| {a} | {b} |" for a, b in leadrelay_rows(rep["main"])]
        out.append("")
    main = rep.get("main", {})
    drain = rep.get("drain")
    plain, pg = rep.get("relay_plain"), rep.get("relay_pg")
    if plain and pg and drain:
        out += ["## Against baselines (same broker, database, hops, batching, FormSubmitted records)", ""]
        out += [
            "| | Leadrelay | relays, no work | relays + inbox/outbox tx | Leadrelay / no work | Leadrelay / inbox-outbox |"
        ]
        out += ["| --- | --- | --- | --- | --- | --- |"]
        lat = main.get("e2e_from_202_ms", {})
        pl, pgl = plain["open_loop"]["e2e_from_ack_ms"], pg["open_loop"]["e2e_from_ack_ms"]
        for q in ("p50", "p99"):
            out.append(
                f"| {q} latency at {main.get('offered_forms_per_s', 0):g}/s, ms (202 or produce ack -> read after 2 hops) "
                f"| {lat.get(q)} | {pl.get(q)} | {pgl.get(q)} | {_ratio(lat.get(q), pl.get(q))} | {_ratio(lat.get(q), pgl.get(q))} |"
            )
        out.append(
            f"| delivered/s at {main.get('offered_forms_per_s', 0):g}/s offered (assigned/s; relays: all records) "
            f"| {main.get('assigned_per_s')} | {plain['open_loop']['delivered_per_s']} | {pg['open_loop']['delivered_per_s']} "
            "| n/a (only qualified leads are assigned) | |"
        )
        out.append(
            f"| capacity: {drain['records']} records drained, submissions/s through both hops "
            f"| {drain['submissions_per_s']} | {plain['drain']['delivered_per_s']} | {pg['drain']['delivered_per_s']} "
            f"| {_ratio(drain['submissions_per_s'], plain['drain']['delivered_per_s'])} "
            f"| {_ratio(drain['submissions_per_s'], pg['drain']['delivered_per_s'])} |"
        )
        out.append(
            f"| CPU s of the two hops in the drain (scoring+routing; relays) "
            f"| {drain['cpu_s'].get('scoring', 0) + drain['cpu_s'].get('routing', 0):.1f} "
            f"| {sum(plain['drain']['cpu_s'].values()):.1f} | {sum(pg['drain']['cpu_s'].values()):.1f} | | |"
        )
        out.append(
            f"| PostgreSQL commits in the drain | {drain['pg_xact_commit']} | {plain['drain']['pg_xact_commit']} "
            f"| {pg['drain']['pg_xact_commit']} | | |"
        )
        out.append("")
    bare, ceil = rep.get("bare"), rep.get("intake_ceiling")
    if bare and ceil:
        bm, bc = bare["bare main"], bare["bare ceiling"]
        out += ["## HTTP front door: intake against a bare FastAPI endpoint (same requests)", ""]
        out += ["| | intake | bare | intake / bare |", "| --- | --- | --- | --- |"]
        out.append(
            f"| accepted req/s at {main.get('offered_forms_per_s', 0):g} forms/s offered | {main.get('accepted_requests_per_s')} "
            f"| {bm['accepted_requests_per_s']} | {_ratio(main.get('accepted_requests_per_s'), bm['accepted_requests_per_s'])} |"
        )
        out.append(
            f"| latency from schedule at that rate, ms p50/p95/p99/max | {_d(main.get('http_latency_from_schedule_ms'))} "
            f"| {_d(bm['http_latency_from_schedule_ms'])} | |"
        )
        out.append(
            f"| ceiling: accepted req/s at {ceil['offered_forms_per_s']:g} forms/s offered | {ceil['accepted_requests_per_s']} "
            f"| {bc['accepted_requests_per_s']} | {_ratio(ceil['accepted_requests_per_s'], bc['accepted_requests_per_s'])} |"
        )
        out.append(
            f"| ceiling latency from schedule, ms | {_d(ceil['http_latency_from_schedule_ms'])} "
            f"| {_d(bc['http_latency_from_schedule_ms'])} | |"
        )
        out.append(f"| server CPU s in the ceiling run | {ceil.get('cpu_s')} | {bc.get('cpu_s')} | |")
        out.append("")
    s = rep.get("search")
    if s:
        out += ["## Highest rate with p99 < 1 s", "", f"Criterion: {s['criterion']}.", ""]
        out += ["| offered forms/s | pass | accepted forms/s | assigned/s | p99 from schedule ms | p99 from 202 ms |"]
        out += ["| --- | --- | --- | --- | --- | --- |"]
        for st in s["steps"]:
            out.append(
                f"| {st['offered_forms_per_s']:g} | {'yes' if st['pass'] else 'no'} | {st['accepted_forms_per_s']} "
                f"| {st['assigned_per_s']} | {st['p99_from_schedule_ms']} | {st['p99_from_202_ms']} |"
            )
        out += [
            "",
            f"Highest passing: **{s['highest_passing_forms_per_s']}** forms/s; lowest failing: {s['lowest_failing_forms_per_s']}.",
            "",
        ]
    if "sustained" in rep:
        out += ["## Sustained run", "", "| figure | value |", "| --- | --- |"]
        out += [f"| {a} | {b} |" for a, b in leadrelay_rows(rep["sustained"])]
        st = rep["sustained"]
        out.append(
            f"| load / drain seconds; all assigned | {st['load_seconds']} / {st['drain_seconds']}; {st['complete']} |"
        )
        out.append("")
    return "\n".join(out) + "\n"
