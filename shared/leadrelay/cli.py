"""The ``leadrelay`` command.

leadrelay run                   all five services in one process (SQLite, in-process bus)
leadrelay serve SERVICE         one service against Kafka and PostgreSQL
leadrelay create-topics         create the Kafka topics with their partition counts
leadrelay check-config [PATH]   validate a rules file
leadrelay schemas [--check]     write (or check) the events' JSON Schemas
leadrelay asyncapi [--check]    write (or check) the AsyncAPI document of the topics
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from leadrelay.bus.kafka import KafkaBus, create_topics
from leadrelay.bus.memory import MemoryBus
from leadrelay.clock import SystemClock
from leadrelay.events import json_schemas
from leadrelay.logging import configure_logging, get_logger
from leadrelay.rules import RulesError, load_rules
from leadrelay.service import SERVICE_NAMES, Runtime, load_services
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
    asyncapi = sub.add_parser("asyncapi", help="write the AsyncAPI 3.0 document of the topics")
    asyncapi.add_argument("--check", action="store_true", help="fail if the stored document is out of date")
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
        elif args.command == "asyncapi":
            return write_asyncapi(check=args.check)
    except RulesError as exc:
        print(str(exc), file=sys.stderr)
        return 2
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


def write_asyncapi(check: bool = False) -> int:
    from leadrelay import asyncapi

    if not asyncapi.write(check=check) and check:
        print(f"stale AsyncAPI document (run `leadrelay asyncapi`): {asyncapi.DOCUMENT.name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
