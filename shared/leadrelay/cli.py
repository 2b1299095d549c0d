"""The ``leadrelay`` command.

leadrelay run                   all five services in one process (SQLite, in-process bus)
leadrelay serve SERVICE         one service against Kafka and PostgreSQL
leadrelay create-topics         create the Kafka topics with their partition counts
leadrelay check-config [PATH]   validate a rules file
leadrelay schemas [--check]     write (or check) the events' JSON Schemas
leadrelay dlq list TOPIC        the dead letters of TOPIC with their errors
leadrelay dlq replay TOPIC [--id EVENT_ID]...
                                publish them again to TOPIC after a fix (the inboxes drop repeats)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from leadrelay import dlq as dead_letters
from leadrelay.bus import Bus
from leadrelay.bus.kafka import KafkaBus, create_topics
from leadrelay.bus.memory import BusInUse, MemoryBus
from leadrelay.clock import SystemClock
from leadrelay.events import TOPIC_PARTITIONS, dlq_topic, json_schemas
from leadrelay.logging import configure_logging, get_logger
from leadrelay.rules import RulesError, load_rules
from leadrelay.runtime import SERVICE_NAMES, Runtime, load_services
from leadrelay.settings import Settings

SCHEMA_DIR = Path(__file__).parent / "schemas"


def build_embedded_app(settings: Settings):  # type: ignore[no-untyped-def]
    from leadrelay.http import create_app

    rules = load_rules(settings.config)
    # The embedded log is written through to a file next to the services' SQLite files,
    # so what intake acknowledged survives a crash or restart of the process.
    bus = MemoryBus(path=settings.data_dir / "bus.db")
    runtime = Runtime(load_services(), settings, rules, SystemClock(), bus)
    return create_app(runtime, "Leadrelay (embedded)")


def build_service_app(settings: Settings, service: str):  # type: ignore[no-untyped-def]
    from leadrelay.http import create_app

    if not settings.database_url and service != "intake":
        raise SystemExit(f"leadrelay serve {service}: set LEADRELAY_DATABASE_URL (postgresql+asyncpg://...)")
    rules = load_rules(settings.config)
    bus = KafkaBus(
        settings.kafka_bootstrap_servers,
        f"{settings.kafka_client_id}-{service}",
        settings.producer_linger_ms,
        settings.kafka_prefix,
    )
    runtime = Runtime(load_services([service]), settings, rules, SystemClock(), bus)
    return create_app(runtime, f"Leadrelay {service}")


def _serve(app, settings: Settings, port: int) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    # uvicorn turns SIGTERM/SIGINT into a graceful shutdown: the lifespan stops consumers
    # after the batch in hand, commits, and drains the outbox.
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=20,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leadrelay", description="Leadrelay: lead handoff from marketing to sales")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run all services embedded (one process, SQLite, in-process bus)")
    run.add_argument("--port", type=int)
    serve = sub.add_parser("serve", help="run one service against Kafka and PostgreSQL")
    serve.add_argument("service", choices=SERVICE_NAMES)
    serve.add_argument("--port", type=int)
    sub.add_parser("create-topics", help="create the Kafka topics (idempotent)")
    check = sub.add_parser("check-config", help="validate a rules file")
    check.add_argument("path", nargs="?", type=Path)
    schemas = sub.add_parser("schemas", help="write the events' JSON Schemas")
    schemas.add_argument("--check", action="store_true", help="fail if the stored schemas are out of date")
    dlq = sub.add_parser("dlq", help="list or replay dead letters")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    for name, help_ in (("list", "list the dead letters of a topic"), ("replay", "publish them again to the topic")):
        p = dlq_sub.add_parser(name, help=help_)
        p.add_argument("topic", choices=sorted(TOPIC_PARTITIONS))
        p.add_argument(
            "--embedded",
            action="store_true",
            help="the embedded event log in LEADRELAY_DATA_DIR (stop `leadrelay run` first) instead of Kafka",
        )
        if name == "replay":
            p.add_argument("--id", action="append", default=[], dest="ids", help="only this event id (repeatable)")
        else:
            p.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    log = get_logger("leadrelay.cli")
    try:
        if args.command == "run":
            app = build_embedded_app(settings)
            port = args.port if args.port is not None else settings.http_port(None)
            log.info("embedded_starting", url=f"http://{settings.host}:{port}", config=str(settings.config))
            _serve(app, settings, port)
        elif args.command == "serve":
            app = build_service_app(settings, args.service)
            _serve(app, settings, args.port if args.port is not None else settings.http_port(args.service))
        elif args.command == "create-topics":
            created = asyncio.run(
                create_topics(
                    settings.kafka_bootstrap_servers,
                    prefix=settings.kafka_prefix,
                    replication_factor=settings.kafka_replication_factor,
                )
            )
            print(json.dumps({"created": created}))
        elif args.command == "check-config":
            rules = load_rules(args.path or settings.config)
            reps = sum(len(t.reps) for t in rules.territories)
            print(f"ok: {len(rules.forms)} forms, {len(rules.territories)} territories, {reps} reps")
        elif args.command == "schemas":
            return write_schemas(check=args.check)
        elif args.command == "dlq":
            return asyncio.run(_dlq(settings, args))
    except (RulesError, BusInUse, LookupError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


async def _dlq(settings: Settings, args: argparse.Namespace) -> int:
    bus: Bus
    if args.embedded:
        bus = MemoryBus(path=settings.data_dir / "bus.db")
    else:
        bus = KafkaBus(
            settings.kafka_bootstrap_servers, f"{settings.kafka_client_id}-dlq", prefix=settings.kafka_prefix
        )
    await bus.start()
    try:
        if args.dlq_command == "list":
            letters = await dead_letters.list_dead_letters(bus, args.topic)
            for d in letters:
                if args.json:
                    print(json.dumps(d.as_dict(), ensure_ascii=False))
                else:
                    print(
                        f"{d.offset}\t{d.event_id}\t{d.type}\tlead {d.key}\tgroup {d.group}\t"
                        f"from {d.topic}[{d.partition}]@{d.source_offset}\t{d.dead_lettered_at}\n\t{d.error}"
                    )
            if not args.json:
                print(f"{len(letters)} dead letter(s) on {dlq_topic(args.topic)}", file=sys.stderr)
        else:
            replayed = await dead_letters.replay(bus, args.topic, args.ids)
            print(f"replayed {len(replayed)} dead letter(s) to {args.topic}", file=sys.stderr)
    finally:
        await bus.stop()
    return 0


def write_schemas(check: bool = False, directory: Path = SCHEMA_DIR) -> int:
    stale = []
    directory.mkdir(exist_ok=True)
    for type_, schema in json_schemas().items():
        path = directory / f"{type_}.json"
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        if not path.exists() or path.read_text() != text:
            stale.append(path.name)
            if not check:
                path.write_text(text)
    if check and stale:
        print("stale JSON Schemas (run `leadrelay schemas`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
