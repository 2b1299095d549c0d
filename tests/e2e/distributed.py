"""Starts Leadrelay distributed for tests: each service its own `leadrelay serve` process,
on the real Kafka broker and PostgreSQL, isolated by a topic/group prefix and a schema prefix.
``console`` among the services starts the web console too (last: it is given the others' URLs).

Every process gets the tests' signing key and the example sources' API keys in its
environment; ``get``/``post`` call as the admin unless ``as_`` names another person, a source,
or None (no credential). ``sent`` keeps every credential sent, for the no-secrets-in-logs check."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from leadrelay.auth import generate_key
from leadrelay.runtime import SERVICE_NAMES
from leadrelay.settings import Settings
from tests.harness import ADMIN, SIGNING_KEY, SOURCE_KEYS, bearer, source_env, token_for

CONSOLE = "console"
CONSOLE_SECRET_KEY = generate_key()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    env: dict[str, str]
    logs: Path
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)

    def credential(self, who: str | None) -> dict[str, str]:
        """Headers that sign in as a person id or a source id (None: no credential)."""
        if who is None:
            return {}
        if who in SOURCE_KEYS:
            self.sent.add(SOURCE_KEYS[who])
            return {"X-API-Key": SOURCE_KEYS[who]}
        token = token_for(who)
        self.sent.add(token)
        return bearer(token)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def console_env(self) -> dict[str, str]:
        """The console reaches each service at its URL (the settings' ``<service>_url``)."""
        fields = {"sla-monitor": "sla_monitor"}
        return {
            f"LEADRELAY_{fields.get(s, s).upper()}_URL": self.url(s)
            for s in Settings().service_urls()
            if s in self.ports
        } | {"LEADRELAY_CONSOLE_SECRET_KEY": CONSOLE_SECRET_KEY}

    def start(self, service: str) -> None:
        port = self.ports.setdefault(service, free_port())
        log = open(self.logs / f"{service}.log", "ab")  # noqa: SIM115 - owned by the process
        env = {**self.env, **self.console_env()} if service == CONSOLE else self.env
        self.procs[service] = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "leadrelay.cli", "serve", service, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, services: list[str] | None = None, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        for service in services or list(self.procs):
            while True:
                proc = self.procs[service]
                if proc.poll() is not None:
                    raise AssertionError(f"{service} exited with {proc.returncode}:\n{self.tail(service)}")
                try:
                    if httpx.get(self.url(service) + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{service} not ready in {timeout}s:\n{self.tail(service)}")
                time.sleep(0.2)

    def stop(self, service: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        proc = self.procs[service]
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def tail(self, service: str, lines: int = 40) -> str:
        path = self.logs / f"{service}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def get(self, service: str, path: str, as_: str | None = ADMIN) -> httpx.Response:
        return httpx.get(self.url(service) + path, timeout=10, headers=self.credential(as_))

    def post(
        self, service: str, path: str, as_: str | None = ADMIN, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        return httpx.post(
            self.url(service) + path, timeout=30, headers={**self.credential(as_), **(headers or {})}, **kwargs
        )

    def wait_for(
        self, service: str, path: str, timeout: float = 30, as_: str | None = ADMIN, **match: Any
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: httpx.Response | None = None
        while time.monotonic() < deadline:
            last = self.get(service, path, as_)
            if last.status_code == 200 and all(last.json().get(k) == v for k, v in match.items()):
                return last.json()  # type: ignore[no-any-return]
            time.sleep(0.1)
        raise AssertionError(
            f"{service} GET {path}: {last and last.status_code} {last and last.text}\n{self.tail(service)}"
        )


@contextmanager
def cluster(
    tmp_path: Path,
    pg_url: str,
    kafka: str,
    prefix: str,
    config: Path,
    services: tuple[str, ...] = SERVICE_NAMES,
    **extra_env: str,
) -> Iterator[Cluster]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADRELAY_")}
    # The suite's rate limits (tests/conftest.py): many posts come from this one address.
    env.update({k: v for k, v in os.environ.items() if k.startswith("LEADRELAY_FORM_BURST_")})
    env.update(
        LEADRELAY_DATABASE_URL=pg_url,
        LEADRELAY_SCHEMA_PREFIX=f"{prefix}_",
        LEADRELAY_KAFKA_BOOTSTRAP_SERVERS=kafka,
        LEADRELAY_KAFKA_PREFIX=f"{prefix}.",
        LEADRELAY_CONFIG=str(config),
        LEADRELAY_SLA_TICK_SECONDS="0.2",
        LEADRELAY_AUTH_SIGNING_KEY=SIGNING_KEY,
        **source_env(),
        **extra_env,
    )
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    c = Cluster(env=env, logs=logs)
    try:
        for s in sorted(services, key=lambda s: s == CONSOLE):  # the console last, with the others' URLs
            c.start(s)
        c.wait_ready()
        yield c
    finally:
        for s in list(c.procs):
            c.stop(s)
