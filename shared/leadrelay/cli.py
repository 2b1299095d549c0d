"""The ``leadrelay`` command.

leadrelay run                   all five services in one process (SQLite, in-process bus)
leadrelay serve SERVICE         one service against Kafka and PostgreSQL (or `console`: the web
                                console alone, reaching the services at their URLs)
leadrelay create-topics         create the Kafka topics with their partition counts
leadrelay check-config [PATH]   validate a rules file
leadrelay schemas [--check]     write (or check) the events' JSON Schemas
leadrelay token USER_ID [--ttl 12h] | --role ROLE
                                print a bearer token for a person of the rules
leadrelay dlq list TOPIC        the dead letters of TOPIC with their errors
leadrelay dlq replay TOPIC [--id EVENT_ID]...
                                publish them again to TOPIC after a fix (the inboxes drop repeats)
leadrelay asyncapi [--check]    write (or check) the AsyncAPI document of the topics
leadrelay import FILE.csv --source SOURCE [--form FORM] [--url INTAKE_URL]
                                send a trade-show or telemarketing list through intake; refused rows
                                go to FILE.rejected.csv with the reasons
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from leadrelay import dlq as dead_letters
from leadrelay.auth import (
    API_KEYS_FILE,
    DEFAULT_TTL,
    KEY_FILE,
    AuthConfigError,
    Authenticator,
    Tokens,
    embedded_source_keys,
    load_or_create_key,
    parse_ttl,
)
from leadrelay.bus import Bus
from leadrelay.bus.kafka import KafkaBus, create_topics
from leadrelay.bus.memory import BusInUse, MemoryBus
from leadrelay.clock import SystemClock
from leadrelay.db import private_data_dir
from leadrelay.events import TOPIC_PARTITIONS, dlq_topic, json_schemas
from leadrelay.logging import configure_logging, get_logger
from leadrelay.rules import Role, Rules, RulesError, SourceRole, load_rules
from leadrelay.runtime import SERVICE_NAMES, Runtime, load_services
from leadrelay.settings import Settings, environment_secret

SCHEMA_DIR = Path(__file__).parent / "schemas"
CONSOLE = "console"


def console_plugin() -> Any | None:
    """The web console (the ``leadrelay.console`` entry point of the console package), if installed."""
    found = [ep for ep in entry_points(group="leadrelay.console") if ep.name == CONSOLE]
    return found[0].load() if found else None


def embedded_auth(settings: Settings, rules: Rules) -> tuple[Settings, Authenticator, dict[str, str]]:
    """Embedded mode signs in without any setup: the signing key and the sources' API keys come
    from the environment where set, else are generated once into the data folder (mode 0600).
    Returns the settings with the key, the authenticator, and the generated API keys to show."""
    if settings.auth_signing_key is None:
        key, _ = load_or_create_key(settings.data_dir / KEY_FILE)
        settings = settings.model_copy(update={"auth_signing_key": SecretStr(key)})
    source_keys, generated = embedded_source_keys(rules, settings.data_dir)
    return settings, Authenticator.from_settings(settings, rules, source_keys), generated


def build_embedded_app(settings: Settings):  # type: ignore[no-untyped-def]
    from leadrelay.http import create_app

    rules = load_rules(settings.config)
    private_data_dir(settings.data_dir)
    settings, auth, generated = embedded_auth(settings, rules)
    # The embedded log is written through to a file next to the services' SQLite files,
    # so what intake acknowledged survives a crash or restart of the process.
    bus = MemoryBus(path=settings.data_dir / "bus.db")
    runtime = Runtime(load_services(), settings, rules, SystemClock(), bus)
    app = create_app(runtime, "Leadrelay (embedded)", auth)
    app.state.generated_api_keys = generated
    plugin = console_plugin()
    if plugin is not None:  # the console at /, calling this same app over ASGI
        plugin.embedded(app, settings)
    return app


def build_console_app(settings: Settings):  # type: ignore[no-untyped-def]
    """`leadrelay serve console`: the web console alone, reaching each service at its base URL."""
    plugin = console_plugin()
    if plugin is None:
        raise SystemExit("leadrelay serve console: the console package (leadrelay-console) is not installed")
    try:
        return plugin.standalone(settings)
    except AuthConfigError as exc:
        raise SystemExit(f"leadrelay serve console: {exc}") from None


def build_service_app(settings: Settings, service: str):  # type: ignore[no-untyped-def]
    from leadrelay.http import create_app

    if not settings.database_url and service != "intake":
        raise SystemExit(f"leadrelay serve {service}: set LEADRELAY_DATABASE_URL (postgresql+asyncpg://...)")
    rules = load_rules(settings.config)
    try:
        # Refuses to start without a usable signing key, or with an API key that is not one.
        auth = Authenticator.from_settings(settings, rules)
    except AuthConfigError as exc:
        raise SystemExit(f"leadrelay serve {service}: {exc}") from None
    bus = KafkaBus(
        settings.kafka_bootstrap_servers,
        f"{settings.kafka_client_id}-{service}",
        settings.producer_linger_ms,
        settings.kafka_prefix,
    )
    runtime = Runtime(load_services([service]), settings, rules, SystemClock(), bus)
    return create_app(runtime, f"Leadrelay {service}", auth)


def sign_in_banner(auth: Authenticator, generated: dict[str, str], url: str, data_dir: Path) -> str:
    """What `leadrelay run` prints at start-up: a token for each example person (the first rep of
    each territory, the managers, ops and admins) and the API keys it generated."""
    rules = auth.rules
    shown = [t.reps[0].id for t in rules.territories] + [p.id for p in rules.staff]
    hours = DEFAULT_TTL.seconds // 3600
    lines = [
        "",
        f"Open {url}/ and sign in: click a person's link below (valid {hours} h), or paste their token.",
        "The API takes the same token (Authorization: Bearer <token>; Authorize at /docs);",
        "`leadrelay token USER_ID` signs in anyone else.",
    ]
    for person_id in shown:
        person = rules.person(person_id)
        if person is None:
            continue
        where = f" ({', '.join(person.territories)})" if person.territories else ""
        lines.append(f"  {person.role.value:<8} {person.name}, {person.id}{where}")
        lines.append(f"           {url}/login?token={auth.issue(person.id)}")
    if generated:
        lines.append(f"API keys of the sources (X-API-Key; generated into {data_dir / API_KEYS_FILE}):")
        for source_id, key in generated.items():
            source = rules.source(source_id)
            lines.append(f"  {source_id} ({source.role.value if source else '?'}): {key}")
        if any((s := rules.source(i)) is not None and s.role is SourceRole.TRACKING for i in generated):
            lines.append(f"A tracking source's key is a Segment/RudderStack write key: point the SDK at {url}.")
    first = first_lead(rules, shown, url)
    if first is not None:
        lines += [first[0], "  " + first[1]]
    lines.append(f"Try: curl -H 'Authorization: Bearer <token>' {url}/v1/me/leads")
    lines.append("")
    return "\n".join(lines)


def first_lead(rules: Rules, shown: list[str], url: str) -> tuple[str, str] | None:
    """A lead for a newcomer to work: a handraiser form from someone at a named account whose
    owner has a link above, so it lands in that rep's queue. (What it says, and the command.)"""
    form = next((f for f in rules.forms if f.handraiser), None)
    for account in rules.accounts:
        owner = rules.person(account.owner)
        if form is None or owner is None or owner.id not in shown or not account.domains:
            continue
        body = {
            "email": f"anna.berg@{account.domains[0]}",
            "first_name": "Anna",
            "last_name": "Berg",
            "company": account.name,
            "job_title": "Head of Operations",
            "phone": "+46 70 123 45 67",
            "company_size": "250",
        }
        data = json.dumps(body, ensure_ascii=False).replace("'", "'\\''")
        return (
            f"A first lead, for {owner.name}'s queue (the {form.name or form.id} form, as a website posts it):",
            f"curl -s -XPOST {url}/v1/forms/{form.id}/submissions -H 'content-type: application/json' -d '{data}'",
        )
    return None


def issue_token(settings: Settings, rules: Rules, user_id: str | None, role: str | None, ttl: str) -> tuple[str, str]:
    """`leadrelay token`: (the token, a line about it). Raises ValueError or AuthConfigError."""
    if (user_id is None) == (role is None):
        raise ValueError("give a USER_ID or --role ROLE (one of them)")
    if role is not None:
        person = next((p for p in rules.people() if p.role.value == role), None)
        if person is None:
            raise ValueError(f"no person with role {role} in {settings.config}")
    else:
        person = rules.person(user_id or "")
        if person is None:
            known = ", ".join(p.id for p in rules.people())
            raise ValueError(f"no person {user_id!r} in {settings.config}; known: {known}")
    key = settings.auth_signing_key.get_secret_value() if settings.auth_signing_key else None
    if key is None:
        path = settings.data_dir / KEY_FILE
        if not path.exists():
            raise AuthConfigError(
                "LEADRELAY_AUTH_SIGNING_KEY is not set (and there is no embedded key: `leadrelay run` makes one)"
            )
        key, _ = load_or_create_key(path)
    lifetime = parse_ttl(ttl)
    now = datetime.now(UTC)
    token = Tokens(key).issue(person, lifetime, now)
    where = f", territories {', '.join(person.territories)}" if person.territories else ""
    about = f"token for {person.id} ({person.role.value}{where}), valid until {(now + lifetime).isoformat(timespec='seconds')}"
    return token, about


def _serve(app, settings: Settings, port: int) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    from leadrelay.limits import http_protocol

    # uvicorn turns SIGTERM/SIGINT into a graceful shutdown: the lifespan stops consumers
    # after the batch in hand, commits, and drains the outbox. Its own log lines go through
    # our logging configuration (log_config=None), so they are structured and escaped too.
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=port,
            log_level=settings.log_level.lower(),
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=20,
            http=http_protocol(settings.max_header_bytes),
            h11_max_incomplete_event_size=settings.max_header_bytes,
            # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: any local process could
            # then pick its own address. Only the configured proxies are believed.
            proxy_headers=bool(settings.trusted_proxies.strip()),
            forwarded_allow_ips=settings.trusted_proxies.strip() or "",
        )
    )
    console = getattr(app.state, "console", None)
    if console is not None:  # the console's live streams end at once instead of holding the shutdown
        console.should_exit = lambda: server.should_exit
    server.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leadrelay", description="Leadrelay: lead handoff from marketing to sales")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run all services embedded (one process, SQLite, in-process bus)")
    run.add_argument("--port", type=int)
    serve = sub.add_parser("serve", help="run one service against Kafka and PostgreSQL")
    serve.add_argument("service", choices=[*SERVICE_NAMES, CONSOLE])
    serve.add_argument("--port", type=int)
    sub.add_parser("create-topics", help="create the Kafka topics (idempotent)")
    check = sub.add_parser("check-config", help="validate a rules file")
    check.add_argument("path", nargs="?", type=Path)
    schemas = sub.add_parser("schemas", help="write the events' JSON Schemas")
    schemas.add_argument("--check", action="store_true", help="fail if the stored schemas are out of date")
    token = sub.add_parser("token", help="print a bearer token for a person of the rules")
    token.add_argument("user_id", nargs="?", help="a person's id (a rep, manager, ops or admin)")
    token.add_argument("--role", choices=[r.value for r in Role], help="the first person with this role instead")
    token.add_argument("--ttl", default="12h", help="how long it is valid: 30m, 12h, 7d (at most 30 days)")
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
    asyncapi = sub.add_parser("asyncapi", help="write the AsyncAPI 3.0 document of the topics")
    asyncapi.add_argument("--check", action="store_true", help="fail if the stored document is out of date")
    imp = sub.add_parser("import", help="send a CSV list of leads through intake (same validation as forms)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--source", required=True, help="a source of the rules (its API key is sent)")
    imp.add_argument("--form", default="list-import", help="the form the rows count as (default: list-import)")
    imp.add_argument("--url", default=None, help="intake's base URL (default: LEADRELAY_INTAKE_URL)")
    args = parser.parse_args(argv)

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    log = get_logger("leadrelay.cli")
    try:
        if args.command == "run":
            app = build_embedded_app(settings)
            port = args.port if args.port is not None else settings.http_port(None)
            url = f"http://{settings.host}:{port}"
            log.info("embedded_starting", url=url, config=str(settings.config))
            # For the person at the terminal (stdout), never through the logs.
            print(sign_in_banner(app.state.auth, app.state.generated_api_keys, url, settings.data_dir), flush=True)
            _serve(app, settings, port)
        elif args.command == "serve" and args.service == CONSOLE:
            _serve(
                build_console_app(settings),
                settings,
                args.port if args.port is not None else settings.http_port(CONSOLE),
            )
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
            print(
                f"ok: {len(rules.forms)} forms, {len(rules.territories)} territories, {reps} reps,"
                f" {len(rules.staff)} other people, {len(rules.sources)} sources"
            )
        elif args.command == "schemas":
            return write_schemas(check=args.check)
        elif args.command == "token":
            try:
                token_, about = issue_token(settings, load_rules(settings.config), args.user_id, args.role, args.ttl)
            except ValueError as exc:  # unknown person or role, bad --ttl
                print(f"leadrelay token: {exc}", file=sys.stderr)
                return 2
            print(about, file=sys.stderr)
            print(token_)
        elif args.command == "dlq":
            return asyncio.run(_dlq(settings, args))
        elif args.command == "asyncapi":
            return write_asyncapi(check=args.check)
        elif args.command == "import":
            return asyncio.run(_import(settings, args))
    except (RulesError, BusInUse, LookupError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except AuthConfigError as exc:
        print(f"leadrelay {args.command}: {exc}", file=sys.stderr)
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


def import_key(settings: Settings, rules: Rules, source_id: str) -> str:
    """The source's API key: from the variable it names, else (embedded) from the data folder."""
    source = rules.source(source_id)
    if source is None:
        known = ", ".join(s.id for s in rules.sources) or "none"
        raise LookupError(f"no source {source_id!r} in the rules; sources: {known}")
    raw = environment_secret(source.key_env)
    if raw is not None:
        return raw.get_secret_value().split(",")[0].strip()
    stored = settings.data_dir / API_KEYS_FILE
    if stored.exists():
        keys = json.loads(stored.read_text(encoding="utf-8"))
        if isinstance(keys, dict) and isinstance(keys.get(source.id), str):
            return str(keys[source.id])
    raise LookupError(f"{source.key_env} is not set (and no embedded key in {settings.data_dir}): the source's key")


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from leadrelay.csv_import import ImportError_, count_rows, import_csv

    rules = load_rules(settings.config)
    key = import_key(settings, rules, args.source)
    try:
        total = count_rows(args.file)
        url = (args.url or settings.intake_url).rstrip("/")
        async with httpx.AsyncClient(base_url=url, timeout=40) as client:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, transient=False) as bar:
                task = bar.add_task(f"importing {args.file.name}", total=total)
                result = await import_csv(
                    args.file,
                    client,
                    source=args.source,
                    form=args.form,
                    api_key=key,
                    progress=lambda n: bar.advance(task, n),
                )
    except ImportError_ as exc:
        print(f"leadrelay import: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"leadrelay import: intake cannot be reached: {exc!r}", file=sys.stderr)
        return 2
    print(f"{result.accepted} accepted, {result.rejected} rejected of {result.total} rows", file=sys.stderr)
    if result.rejected_file is not None:
        print(f"rejected rows and the reasons: {result.rejected_file}", file=sys.stderr)
        return 1
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
