"""Builders for tests that run services in-process: a Runtime on a MemoryBus, called over ASGI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from leadrelay.bus import Bus
from leadrelay.bus.memory import MemoryBus
from leadrelay.clock import FrozenClock
from leadrelay.http import create_app
from leadrelay.rules import Rules, load_rules
from leadrelay.runtime import Runtime, load_services
from leadrelay.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "example.yaml"


def example_rules() -> Rules:
    return load_rules(EXAMPLE)


@dataclass
class Harness:
    runtime: Runtime
    client: httpx.AsyncClient
    bus: Bus
    clock: FrozenClock

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
    runtime = Runtime(load_services(services), settings, rules or example_rules(), clock, bus)
    app = create_app(runtime, "test")
    await runtime.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leadrelay") as client:
            yield Harness(runtime=runtime, client=client, bus=bus, clock=clock)
    finally:
        await runtime.stop()
