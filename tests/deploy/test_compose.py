"""docker-compose.yml and deploy/Dockerfile checked against the code, without Docker.

No Docker engine is needed: the files are parsed and every name, port, path and
environment variable in them is checked against what the `leadrelay` package
and the repository actually have. The deploy scripts get a `bash -n`.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from leadrelay import cli
from leadrelay.rules import load_rules
from leadrelay.runtime import SERVICE_NAMES, load_services
from leadrelay.settings import DEFAULT_PORTS, Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_PREFIX = "LEADRELAY_"
SCRIPTS = [
    "deploy/kafka.sh",
    "deploy/postgres.sh",
    "deploy/toxiproxy.sh",
    "deploy/run-distributed.sh",
    "deploy/chromium.sh",
]


# ------------------------------------------------------------------ helpers


def load_compose() -> dict[str, Any]:
    # safe_load resolves anchors, aliases and `<<` merge keys like Compose does.
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), (
        f"{COMPOSE_FILE.name}: no top-level `services:` mapping"
    )
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment:` (mapping or KEY=VALUE list) as the strings the container gets."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    out = {}
    for key, value in env.items():
        if value is None:
            continue  # passed through from the host's environment, if set there
        out[str(key)] = json.dumps(value) if isinstance(value, bool) else str(value)
    return out


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """`depends_on:` (list or mapping) as {target: condition}."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def published_ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    """`ports:` as (host port, container port) pairs, short or long syntax."""
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            out.append((int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        container = int(parts[-1])
        host = int(parts[-2]) if len(parts) >= 2 else container
        out.append((host, container))
    return out


@dataclass
class Dockerfile:
    workdir: PurePosixPath = PurePosixPath("/")
    # container path -> repository path, for what COPY put in the image (in order)
    copies: list[tuple[PurePosixPath, Path]] = field(default_factory=list)
    copy_sources: list[str] = field(default_factory=list)
    # pip install arguments, each resolved to (container path, repository path or None)
    pip_installs: list[tuple[str, PurePosixPath, Path | None]] = field(default_factory=list)
    pip_flags: list[str] = field(default_factory=list)
    # requirement files (``pip install -r``), each as (container path, repository path or None)
    pip_requirements: list[tuple[PurePosixPath, Path | None]] = field(default_factory=list)
    entrypoint: list[str] | None = None

    def to_repo(self, path: PurePosixPath) -> Path | None:
        """The repository file or directory that ended up at ``path`` in the image."""
        for dest, src in reversed(self.copies):  # a later COPY wins
            if path == dest:
                return src
            if dest in path.parents:
                return src / path.relative_to(dest)
        return None


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


def parse_dockerfile() -> Dockerfile:
    df = Dockerfile()
    for keyword, args in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if keyword == "WORKDIR":
            df.workdir = df.workdir / args  # an absolute args replaces it
        elif keyword == "COPY":
            words = json.loads(args) if args.startswith("[") else shlex.split(args)
            words = [w for w in words if not w.startswith("--")]
            *sources, dest = words
            dest_path = df.workdir / dest
            for src in sources:
                df.copy_sources.append(src)
                repo_src = REPO / src
                into_dir = dest.endswith("/") or len(sources) > 1 or repo_src.is_dir()
                target = dest_path / repo_src.name if into_dir and not repo_src.is_dir() else dest_path
                df.copies.append((target, repo_src))
        elif keyword == "RUN":
            for command in re.split(r"&&|;", args):
                words = shlex.split(command)
                for i in range(len(words) - 1):
                    if words[i].endswith("pip") and words[i + 1] == "install":
                        args_ = words[i + 2 :]
                        for j, word in enumerate(args_):
                            if j > 0 and args_[j - 1] in ("-r", "--requirement"):
                                in_image = df.workdir / word
                                df.pip_requirements.append((in_image, df.to_repo(in_image)))
                            elif word.startswith("-"):
                                df.pip_flags.append(word)
                            else:
                                in_image = df.workdir / word
                                df.pip_installs.append((word, in_image, df.to_repo(in_image)))
        elif keyword == "ENTRYPOINT":
            df.entrypoint = json.loads(args) if args.startswith("[") else shlex.split(args)
    return df


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile()


def package_dirs() -> set[Path]:
    """Every installable package of the repository: shared/ and services/*/ with a pyproject.toml."""
    return {
        p.parent.resolve()
        for p in [REPO / "shared" / "pyproject.toml", *REPO.glob("services/*/pyproject.toml")]
        if p.exists()
    }


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as a container with exactly ``env`` would read them (none of this machine's LEADRELAY_*)."""
    for key in list(os.environ):
        if key.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


# ------------------------------------------------------------ the services


def test_the_five_services_are_in_the_compose_file(services: dict[str, Any]) -> None:
    missing = [name for name in SERVICE_NAMES if name not in services]
    assert not missing, f"{COMPOSE_FILE.name} lacks service(s) {missing} (leadrelay.runtime.SERVICE_NAMES)"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_command_is_one_the_cli_accepts(name: str, services: dict[str, Any]) -> None:
    command = services[name].get("command")
    assert command == ["serve", name], f"service {name}: command is {command!r}, expected ['serve', '{name}']"
    assert cli.SERVICE_NAMES == SERVICE_NAMES and name in cli.SERVICE_NAMES, (
        f"`leadrelay serve` does not accept {name!r} (choices: {cli.SERVICE_NAMES})"
    )
    definitions = load_services([name])
    assert [d.name for d in definitions] == [name], f"load_services(['{name}']) loaded {[d.name for d in definitions]}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_cli_runs_the_service_on_its_published_port(
    name: str, services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`leadrelay <command>` with the container's environment: which service, which port, which host."""
    service = services[name]
    served: dict[str, Any] = {}
    settings_from(env_of(service), monkeypatch)
    monkeypatch.setattr(cli, "configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setattr(cli, "build_service_app", lambda settings, svc: {"service": svc})
    monkeypatch.setattr(cli, "_serve", lambda app, settings, port: served.update(app=app, settings=settings, port=port))

    assert cli.main(list(service["command"])) == 0, f"service {name}: `leadrelay {service['command']}` failed"
    assert served, f"service {name}: `leadrelay {' '.join(service['command'])}` did not start a server"
    assert served["app"] == {"service": name}, f"service {name}: the CLI built the app of {served['app']}"
    container_ports = [c for _, c in published_ports(service)]
    assert served["port"] in container_ports, (
        f"service {name}: listens on {served['port']} but the compose file publishes container port(s) {container_ports}"
    )
    assert served["settings"].host == "0.0.0.0", (  # noqa: S104 - what a container needs
        f"service {name}: LEADRELAY_HOST is {served['settings'].host!r}; in a container it must be 0.0.0.0"
    )


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_published_port_is_the_default_port(name: str, services: dict[str, Any]) -> None:
    ports = published_ports(services[name])
    want = DEFAULT_PORTS[name]
    assert ports == [(want, want)], f"service {name}: ports {ports}, expected [{want}:{want}] (DEFAULT_PORTS)"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_healthcheck_probes_the_services_own_readyz(name: str, services: dict[str, Any]) -> None:
    test = " ".join((services[name].get("healthcheck") or {}).get("test") or [])
    url = f"127.0.0.1:{DEFAULT_PORTS[name]}/readyz"
    assert url in test, f"service {name}: healthcheck {test!r} does not probe {url}"


# ------------------------------------------------- environment and settings


def source_key_variables(services: dict[str, Any], dockerfile: Dockerfile) -> set[str]:
    """The API key variables the rules file of the containers names (``sources[].key_env``)."""
    out: set[str] = set()
    for name in SERVICE_NAMES:
        path = env_of(services[name]).get("LEADRELAY_CONFIG")
        in_repo = dockerfile.to_repo(PurePosixPath(path)) if path else None
        if in_repo is not None and in_repo.is_file():
            out |= {s.key_env for s in load_rules(in_repo).sources}
    return out


def test_every_leadrelay_variable_is_a_setting(services: dict[str, Any], dockerfile: Dockerfile) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    named = set(re.findall(rf"\b{ENV_PREFIX}[A-Za-z0-9_]+", text, flags=re.IGNORECASE))
    assert named, f"{COMPOSE_FILE.name} sets no {ENV_PREFIX}* variable at all"
    fields = {ENV_PREFIX + f.upper() for f in Settings.model_fields}
    keys = source_key_variables(services, dockerfile)
    unknown = sorted(v for v in named if v.upper() not in fields and v not in keys)
    assert not unknown, (
        f"{COMPOSE_FILE.name} names {unknown}, which neither leadrelay.settings.Settings reads "
        f"(it ignores unknown variables silently) nor the rules' sources name as key_env; "
        f"known: {sorted(fields | keys)}"
    )


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_secrets_come_from_the_host_never_the_file(name: str, services: dict[str, Any], dockerfile: Dockerfile) -> None:
    """`leadrelay serve` refuses to start without a signing key: every service must get it, and
    the sources' API keys, from the host's environment, with no value written in the file."""
    env = services[name].get("environment") or {}
    assert isinstance(env, dict), f"service {name}: environment must be a mapping"
    for var in [
        "LEADRELAY_AUTH_SIGNING_KEY",
        "LEADRELAY_AUTH_PREVIOUS_SIGNING_KEY",
        *sorted(source_key_variables(services, dockerfile)),
    ]:
        assert var in env, f"service {name}: {var} is not passed through from the host"
        assert env[var] is None, f"service {name}: {var} has a value in {COMPOSE_FILE.name}; secrets come from the host"


@pytest.mark.parametrize("name", [*SERVICE_NAMES, "create-topics"])
def test_environment_values_parse(name: str, services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: v for k, v in env_of(services[name]).items() if k.upper().startswith(ENV_PREFIX)}
    assert env, f"service {name}: no {ENV_PREFIX}* environment"
    try:
        settings = settings_from(env, monkeypatch)
    except Exception as exc:  # pydantic's ValidationError names the field
        pytest.fail(f"service {name}: its {ENV_PREFIX}* environment does not parse: {exc}")
    for key, value in env.items():
        got = getattr(settings, key[len(ENV_PREFIX) :].lower())
        assert str(got) == value or (isinstance(got, Path) and got == Path(value)), (
            f"service {name}: {key}={value!r} gave Settings a different value {got!r}"
        )


@pytest.mark.parametrize("name", [n for n in SERVICE_NAMES if n != "intake"])
def test_database_url_matches_the_postgres_service(
    name: str, services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(env_of(services[name]), monkeypatch)
    assert settings.database_url, f"service {name}: LEADRELAY_DATABASE_URL is not set (`leadrelay serve` needs it)"
    url = make_url(settings.database_url)
    assert url.drivername == "postgresql+asyncpg", f"service {name}: database driver {url.drivername!r}"
    assert url.host in services, f"service {name}: database host {url.host!r} is not a compose service"
    pg = env_of(services[url.host])
    assert (url.username, url.password, url.database, url.port or 5432) == (
        pg.get("POSTGRES_USER"),
        pg.get("POSTGRES_PASSWORD"),
        pg.get("POSTGRES_DB"),
        5432,
    ), f"service {name}: {settings.database_url} does not match the {url.host} service's POSTGRES_* settings"


@pytest.mark.parametrize("name", [*SERVICE_NAMES, "create-topics"])
def test_kafka_bootstrap_is_an_advertised_listener(
    name: str, services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(env_of(services[name]), monkeypatch)
    advertised = env_of(services["kafka"]).get("KAFKA_ADVERTISED_LISTENERS", "")
    for server in settings.kafka_bootstrap_servers.split(","):
        assert f"://{server.strip()}" in advertised, (
            f"service {name}: Kafka bootstrap {server!r} is not among the broker's advertised listeners {advertised!r}"
        )


def test_config_file_is_in_the_image_and_valid(
    services: dict[str, Any], dockerfile: Dockerfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = {env_of(services[n]).get("LEADRELAY_CONFIG") for n in SERVICE_NAMES}
    assert None not in paths, "every service must set LEADRELAY_CONFIG"
    for path in paths:
        assert path is not None
        in_repo = dockerfile.to_repo(PurePosixPath(path))
        assert in_repo is not None, f"LEADRELAY_CONFIG={path}: the Dockerfile copies nothing to that path"
        assert in_repo.is_file(), f"LEADRELAY_CONFIG={path}: comes from {in_repo.relative_to(REPO)}, which is no file"
        rules = load_rules(in_repo)
        assert rules.territories, f"{in_repo.relative_to(REPO)}: no territories"


# -------------------------------------------------------- compose structure


def test_depends_on_targets_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"service {name} depends on {target!r}, which is not a service"
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), (
                    f"service {name} waits for {target} to be healthy, but {target} has no healthcheck"
                )


@pytest.mark.parametrize("name", [*SERVICE_NAMES, "create-topics"])
def test_leadrelay_containers_wait_for_their_dependencies(name: str, services: dict[str, Any]) -> None:
    deps = depends_on(services[name])
    if name == "create-topics":
        assert deps.get("kafka") == "service_healthy", f"create-topics must wait for kafka to be healthy: {deps}"
        return
    assert deps.get("postgres") == "service_healthy", f"service {name} must wait for postgres healthy: {deps}"
    assert deps.get("create-topics") == "service_completed_successfully", (
        f"service {name} must wait for create-topics to complete successfully: {deps}"
    )


def test_build_context_and_dockerfile_exist(services: dict[str, Any]) -> None:
    built = {name: s["build"] for name, s in services.items() if s.get("build")}
    assert set(SERVICE_NAMES) <= set(built), f"not built from the Dockerfile: {set(SERVICE_NAMES) - set(built)}"
    for name, build in built.items():
        context = COMPOSE_FILE.parent / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), f"service {name}: build context {context} does not exist"
        dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
        assert dockerfile.is_file(), f"service {name}: Dockerfile {dockerfile} does not exist"
        assert dockerfile.resolve() == DOCKERFILE.resolve(), (
            f"service {name}: built from {dockerfile}, not {DOCKERFILE}"
        )


def test_kafka_does_not_create_topics_by_itself(services: dict[str, Any]) -> None:
    env = env_of(services["kafka"])
    value = env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE")
    assert value is not None and value.lower() == "false", (
        f"kafka: KAFKA_AUTO_CREATE_TOPICS_ENABLE is {value!r}; it must be false (topics come from create-topics)"
    )
    assert "KAFKA_PROCESS_ROLES" in env and "KAFKA_CONTROLLER_QUORUM_VOTERS" in env, "kafka: not configured for KRaft"


def test_create_topics_runs_the_cli_command(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    service = services.get("create-topics")
    assert service, f"{COMPOSE_FILE.name} has no create-topics service"
    assert service.get("command") == ["create-topics"], f"create-topics: command is {service.get('command')!r}"
    assert str(service.get("restart", "no")) == "no", "create-topics is a one-shot job: it must not restart"
    seen: dict[str, Any] = {}

    async def fake_create_topics(bootstrap_servers: str, **kwargs: Any) -> list[str]:
        seen.update(bootstrap_servers=bootstrap_servers, **kwargs)
        return []

    settings_from(env_of(service), monkeypatch)
    monkeypatch.setattr(cli, "configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setattr(cli, "create_topics", fake_create_topics)
    assert cli.main(list(service["command"])) == 0, "`leadrelay create-topics` failed"
    assert seen.get("bootstrap_servers") == "kafka:9092", f"create-topics would connect to {seen}"


# --------------------------------------------------------------- Dockerfile


def test_dockerfile_copy_sources_exist(dockerfile: Dockerfile) -> None:
    assert dockerfile.copy_sources, "the Dockerfile has no COPY"
    for src in dockerfile.copy_sources:
        assert (REPO / src).exists(), f"Dockerfile: COPY source {src!r} does not exist in the repository"


def test_dockerfile_installs_the_locked_dependencies_with_their_hashes(dockerfile: Dockerfile) -> None:
    """Third-party packages come from requirements.lock (hash-checked), the packages add nothing."""
    assert [repo for _, repo in dockerfile.pip_requirements] == [REPO / "requirements.lock"]
    assert "--require-hashes" in dockerfile.pip_flags
    assert "--no-deps" in dockerfile.pip_flags


def test_dockerfile_installs_every_package(dockerfile: Dockerfile) -> None:
    installed = set()
    for word, in_image, in_repo in dockerfile.pip_installs:
        assert in_repo is not None, f"Dockerfile: pip installs {word} ({in_image}) before any COPY put it there"
        assert (in_repo / "pyproject.toml").is_file(), f"Dockerfile: pip installs {word}, which has no pyproject.toml"
        installed.add(in_repo.resolve())
    missing = sorted(str(p.relative_to(REPO)) for p in package_dirs() - installed)
    assert not missing, f"Dockerfile: `pip install` lacks {missing}"
    editable = [f for f in dockerfile.pip_flags if f in ("-e", "--editable")]
    assert not editable, "Dockerfile: the image needs regular installs, not editable ones"
    assert dockerfile.entrypoint == ["leadrelay"], f"Dockerfile: ENTRYPOINT is {dockerfile.entrypoint}"


def test_dockerignore_keeps_what_the_image_needs(dockerfile: Dockerfile) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in [".venv", ".git", ".run"]:
        assert needed in patterns, f".dockerignore: {needed} is not excluded from the build context"
    for src in dockerfile.copy_sources:
        top = src.rstrip("/")
        hit = [p for p in patterns if not p.startswith("!") and fnmatch(top, p.rstrip("/"))]
        assert not hit, f".dockerignore: {hit} excludes {src}, which the Dockerfile copies"


@pytest.mark.parametrize("pyproject", sorted(REPO.glob("services/*/pyproject.toml")), ids=lambda p: p.parent.name)
def test_migrations_are_package_data(pyproject: Path) -> None:
    """A regular (non-editable) install has only what package-data lists: every migration file must match."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    package_data: dict[str, list[str]] = data.get("tool", {}).get("setuptools", {}).get("package-data", {})
    for migrations in pyproject.parent.glob("*/migrations"):
        package = migrations.parent
        files = {p for p in migrations.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
        shipped = {Path(p) for pattern in package_data.get(package.name, []) for p in glob.glob(str(package / pattern))}
        missing = sorted(str(p.relative_to(pyproject.parent)) for p in files - shipped)
        assert not missing, f"{pyproject.relative_to(REPO)}: package-data leaves out {missing}"


# ------------------------------------------------------------------ scripts


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_is_valid_bash(script: str) -> None:
    path = REPO / script
    assert path.is_file(), f"{script} does not exist"
    assert os.access(path, os.X_OK), f"{script} is not executable"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)  # noqa: S603, S607
    assert result.returncode == 0, f"bash -n {script}:\n{result.stderr}"


def test_compose_file_is_what_the_tests_read() -> None:
    # Guards the helpers above: a silently empty parse would make every check vacuous.
    data = load_compose()
    assert {"kafka", "postgres", "create-topics", *SERVICE_NAMES} <= set(data["services"]), sorted(data["services"])
