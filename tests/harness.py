"""Builders for tests that run services in-process: a Runtime on a MemoryBus, called over ASGI.

Sign-in: the settings carry a test signing key and the sources get test API keys, so
``h.client`` calls as the admin (``rita.admin``), ``h.as_("karin.ek")`` as any person of the
rules, ``h.as_("crm")`` with a source's API key, and ``h.as_(None)`` with no credential.
``token_for("astrid.lindqvist")`` gives a bearer token outside a harness."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from leadrelay.auth import DEFAULT_TTL, Authenticator, Tokens, generate_key
from leadrelay.bus import Bus
from leadrelay.bus.memory import MemoryBus
from leadrelay.clock import FrozenClock
from leadrelay.http import create_app
from leadrelay.rules import Rules, load_rules
from leadrelay.runtime import Runtime, load_services
from leadrelay.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "example.yaml"
# Random per test session: nothing signed here is valid anywhere else.
SIGNING_KEY = generate_key()
SOURCE_KEYS = {
    "website-tracking": generate_key(),
    "website": generate_key(),
    "crm": generate_key(),
    "prometheus": generate_key(),
    "list-import": generate_key(),
}
ADMIN = "rita.admin"


def example_rules() -> Rules:
    return load_rules(EXAMPLE)


def token_for(person_id: str, ttl: timedelta = DEFAULT_TTL, rules: Rules | None = None, key: str = SIGNING_KEY) -> str:
    """A bearer token for a person of the (example) rules, signed with the tests' key."""
    person = (rules or example_rules()).person(person_id)
    assert person is not None, f"no person {person_id!r} in the rules"
    return Tokens(key).issue(person, ttl)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def source_env() -> dict[str, str]:
    """The environment variables of the example's sources, holding the tests' API keys."""
    rules = example_rules()
    return {s.key_env: SOURCE_KEYS[s.id] for s in rules.sources}


@dataclass
class Harness:
    runtime: Runtime
    client: httpx.AsyncClient  # signed in as the admin
    bus: Bus
    clock: FrozenClock
    auth: Authenticator
    transport: httpx.ASGITransport
    _clients: dict[str | None, httpx.AsyncClient] = field(default_factory=dict)

    def credential(self, who: str | None) -> dict[str, str]:
        """Headers that sign in as a person id or a source id (None: no credential)."""
        if who is None:
            return {}
        if who in SOURCE_KEYS:
            return {"X-API-Key": SOURCE_KEYS[who]}
        return bearer(self.auth.issue(who))

    def as_(self, who: str | None) -> httpx.AsyncClient:
        """A client that calls as ``who`` (a person id, a source id, or None for anonymous)."""
        if who not in self._clients:
            self._clients[who] = httpx.AsyncClient(
                transport=self.transport, base_url="http://leadrelay", headers=self.credential(who)
            )
        return self._clients[who]

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.aclose()

    async def wait_for(self, path: str, code: int = 200, timeout: float = 15.0, **match: Any) -> dict[str, Any]:
        """Poll ``path`` until it answers ``code`` (and the JSON has the ``match`` items)."""
        deadline = time.monotonic() + timeout
        last: httpx.Response | None = None
        while time.monotonic() < deadline:
            last = await self.client.get(path)
            if last.status_code == code:
                body = last.json()
                if all(body.get(k) == v for k, v in match.items()):
                    return body  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"GET {path}: wanted {code} {match}, last got {last and last.status_code} {last and last.text}"
        )

    async def settle(self, timeout: float = 15.0) -> None:
        """Wait until every consumer has committed everything and every outbox is empty."""
        try:
            await self.runtime.wait_settled(timeout)
        except TimeoutError as exc:
            raise AssertionError(f"pipeline did not settle: {exc}") from None


def settings_for(
    tmp_path: Path, database_url: str | None = None, schema_prefix: str = "", **overrides: Any
) -> Settings:
    return Settings(
        config=EXAMPLE,
        database_url=database_url,
        data_dir=tmp_path / "data",
        schema_prefix=schema_prefix,
        auth_signing_key=SecretStr(SIGNING_KEY),
        sla_tick_seconds=0.05,
        outbox_poll_seconds=0.2,
        consumer_fetch_timeout_ms=20,
        **overrides,
    )


@asynccontextmanager
async def running(
    settings: Settings,
    *,
    services: list[str] | None = None,
    rules: Rules | None = None,
    clock: FrozenClock | None = None,
    bus: Bus | None = None,
) -> AsyncIterator[Harness]:
    clock = clock or FrozenClock()
    bus = bus or MemoryBus()
    rules = rules or example_rules()
    runtime = Runtime(load_services(services), settings, rules, clock, bus)
    keys = {s.id: [SOURCE_KEYS[s.id]] for s in rules.sources if s.id in SOURCE_KEYS}
    auth = Authenticator.from_settings(settings, rules, keys)
    app = create_app(runtime, "test", auth)
    transport = httpx.ASGITransport(app=app)
    await runtime.start()
    try:
        admin = bearer(auth.issue(ADMIN)) if rules.person(ADMIN) else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://leadrelay", headers=admin) as client:
            h = Harness(runtime=runtime, client=client, bus=bus, clock=clock, auth=auth, transport=transport)
            try:
                yield h
            finally:
                await h.aclose()
    finally:
        await runtime.stop()
