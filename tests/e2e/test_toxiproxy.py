"""deploy/toxiproxy.sh and the tests' Toxiproxy client, against a real Toxiproxy and a TCP echo
server on loopback: each toxic the fault tests use does to the traffic what they rely on."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e.distributed import free_port
from tests.toxiproxy import Proxy, Toxiproxy, toxiproxy_server

pytestmark = pytest.mark.slow


@pytest.fixture
def toxi(tmp_path: Path) -> Iterator[Toxiproxy]:
    if os.environ.get("LEADRELAY_REQUIRE_INFRA") != "1":
        pytest.skip("builds and runs Toxiproxy (make test does)")
    with toxiproxy_server(free_port(), tmp_path / "toxiproxy") as api:
        yield api


@pytest.fixture
async def echo() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port


async def roundtrip(proxy: Proxy, payload: bytes, timeout: float = 10) -> tuple[bytes, float]:
    host, port = proxy.listen.rsplit(":", 1)
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(payload)
        await writer.drain()
        got = b""
        while len(got) < len(payload):
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            got += chunk
        return got, time.monotonic() - started
    finally:
        writer.close()


async def test_toxics_do_what_the_fault_tests_rely_on(toxi: Toxiproxy, echo: int) -> None:
    assert toxi.version()
    proxy = toxi.create("echo", f"127.0.0.1:{free_port()}", f"127.0.0.1:{echo}")
    assert "echo" in toxi.proxies()

    got, clean = await roundtrip(proxy, b"hello")
    assert got == b"hello"

    with proxy.fault("latency", "downstream", latency=400):
        got, slow = await roundtrip(proxy, b"hello")
    assert got == b"hello" and slow >= 0.4 > clean, (slow, clean)
    assert proxy.toxics() == []

    proxy.toxic("bandwidth", "downstream", {"rate": 20})  # 20 KB/s: 60 KB take about 3 s
    got, took = await roundtrip(proxy, b"x" * 60_000)
    assert len(got) == 60_000 and took >= 2.0, took
    proxy.clear()

    proxy.toxic("reset_peer", "upstream", {"timeout": 0})
    try:
        got, took = await roundtrip(proxy, b"hello", timeout=5)
    except ConnectionError:
        got, took = b"", 0.0
    assert got == b"" and took < 4, f"a reset connection answered {got!r} after {took:.1f}s"
    proxy.clear()

    proxy.enable(False)
    with pytest.raises(OSError):
        await roundtrip(proxy, b"hello")
    toxi.reset()  # enables every proxy, removes every toxic
    got, _ = await roundtrip(proxy, b"hello")
    assert got == b"hello"
