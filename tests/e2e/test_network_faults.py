"""Network faults between the services and their dependencies: nothing lost, nothing doubled, order kept.

Toxiproxy (deploy/toxiproxy.sh) sits between every service and Kafka and between every service
and PostgreSQL. Kafka is the test's own broker, with a second listener that advertises the
proxy's address (deploy/kafka.sh, KAFKA_PROXY_PORT): clients that bootstrap through the proxy
are sent back through it for every partition leader, so no connection bypasses it. PostgreSQL is
the tests' server, reached through the proxy.

While a stream of leads flows (a form, then three behaviour events in order), the network gets
in turn: added latency with jitter, a bandwidth trickle, data cut into small slices, connections
reset mid-request (TCP RST) on each side, connections that stall and are closed, and a cut cable
(both proxies disabled: the services' /readyz must notice, which also proves their traffic goes
through the proxies). Then the invariants of tests/e2e/chaos.py over every accepted lead: one
assignment and one clock of each kind, at most one alert per deadline, each lead's events handled
once and in order, nothing on a dead-letter topic, nothing lost.

Bounded: about two and a half minutes, loopback only, stops by itself.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from leadrelay.bus.kafka import create_topics
from leadrelay.events import all_topics
from tests.e2e.chaos import CONSUMERS, GROUP_TOPICS, Kafka, Load, check, rules, script
from tests.e2e.distributed import Cluster, cluster, free_port
from tests.toxiproxy import Proxy, toxiproxy_server

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

FIRST_TOUCH_SECONDS = 10
# (type, stream, attributes, which proxies, seconds): each fault in turn while leads flow.
FAULTS: list[tuple[str, str, dict[str, int], tuple[str, ...], float]] = [
    ("latency", "downstream", {"latency": 200, "jitter": 100}, ("kafka", "postgres"), 10),
    ("latency", "upstream", {"latency": 100, "jitter": 50}, ("kafka", "postgres"), 6),
    ("bandwidth", "downstream", {"rate": 16}, ("kafka", "postgres"), 8),
    ("slicer", "downstream", {"average_size": 32, "size_variation": 16, "delay": 500}, ("kafka", "postgres"), 8),
    ("reset_peer", "upstream", {"timeout": 800}, ("postgres",), 8),
    ("reset_peer", "upstream", {"timeout": 800}, ("kafka",), 8),
    ("timeout", "upstream", {"timeout": 2000}, ("kafka", "postgres"), 8),
]


@contextmanager
def own_kafka(tmp_path: Path) -> Iterator[tuple[str, int, int]]:
    """A broker of the test's own on free ports, with a listener advertising a proxy's port.
    Yields (direct bootstrap, the proxy's port, the proxied listener's port)."""
    port, controller, proxy, listener = (free_port() for _ in range(4))
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "KAFKA_PROXY_PORT": str(proxy),
        "KAFKA_PROXY_LISTENER_PORT": str(listener),
        "KAFKA_DATA_DIR": str(tmp_path / "kafka"),
    }
    script("kafka.sh", "start", env)
    try:
        yield f"127.0.0.1:{port}", proxy, listener
    finally:
        script("kafka.sh", "stop", env)


def readiness(c: Cluster, service: str) -> dict[str, str]:
    try:
        r = httpx.get(c.url(service) + "/readyz", timeout=10)
    except httpx.HTTPError as exc:
        return {"readyz": repr(exc)}
    return dict(r.json()["checks"]) if r.status_code in (200, 503) else {"readyz": str(r.status_code)}


async def cut_cable(c: Cluster, proxies: dict[str, Proxy]) -> None:
    """Both proxies disabled (connections closed, new ones refused) until routing's /readyz
    reports the bus and its database unreachable; then enabled again until it is ready."""
    for p in proxies.values():
        p.enable(False)
    try:
        deadline = time.monotonic() + 20
        while True:
            checks = await asyncio.to_thread(readiness, c, "routing")
            if checks.get("bus", "ok") != "ok" and checks.get("routing.database", "ok") != "ok":
                break
            assert time.monotonic() < deadline, f"routing still ready with its network cut: {checks}"
            await asyncio.sleep(0.5)
    finally:
        for p in proxies.values():
            p.enable(True)
    await asyncio.to_thread(c.wait_ready, ["intake", *CONSUMERS], 60)


@pytest.mark.usefixtures("kafka_bootstrap")  # run where Kafka is (make test); the broker is the test's own
async def test_network_faults_lose_and_double_nothing(tmp_path: Path, pg_url: str, pg_schema_cleanup: str) -> None:
    prefix = pg_schema_cleanup.rstrip("_")
    rng = random.Random(int(time.time()))
    with (
        own_kafka(tmp_path) as (bootstrap, proxy_port, listener_port),
        toxiproxy_server(free_port(), tmp_path / "toxiproxy") as toxi,
    ):
        await create_topics(bootstrap, all_topics(), prefix=f"{prefix}.")
        k = Kafka(bootstrap, f"{prefix}.")
        db = make_url(pg_url)
        proxies = {
            "kafka": toxi.create("kafka", f"127.0.0.1:{proxy_port}", f"127.0.0.1:{listener_port}"),
            "postgres": toxi.create("postgres", f"127.0.0.1:{free_port()}", f"{db.host}:{db.port}"),
        }
        via_proxy = db.set(host="127.0.0.1", port=int(proxies["postgres"].listen.rsplit(":", 1)[1]))
        services = ("intake", *CONSUMERS)
        with cluster(
            tmp_path,
            via_proxy.render_as_string(hide_password=False),
            proxies["kafka"].listen,
            prefix,
            rules(tmp_path, FIRST_TOUCH_SECONDS),
            services=services,
        ) as c:
            load = Load(c, seed=rng.randrange(1 << 30), attempts=120, pause=0.5)
            done = asyncio.Event()
            load_task = asyncio.create_task(load.run_until(done, per_second=4.0))
            figures: dict[str, float] = {}
            try:
                await asyncio.sleep(4)
                for type_, stream, attrs, names, seconds in FAULTS:
                    added = [(proxies[n], proxies[n].toxic(type_, stream, attrs)) for n in names]
                    await asyncio.sleep(seconds)
                    for p, toxic in added:
                        p.remove(toxic)
                    await asyncio.sleep(1)
                await cut_cable(c, proxies)
                await asyncio.sleep(3)
                figures["catch_up_after_faults"] = await k.caught_up(list(GROUP_TOPICS), timeout=120)
            finally:
                done.set()
                await load_task
            await asyncio.sleep(FIRST_TOUCH_SECONDS + 3)  # every first-touch deadline is due
            await k.caught_up(list(GROUP_TOPICS), timeout=60)
            await asyncio.sleep(2)  # the SLA timer's last tick and the outbox relays
            await load.client.aclose()

            print(f"\naccepted leads: {len(load.accepted)}; client retries: {dict(load.failures)}; {figures}")
            assert len(load.accepted) >= 150, (len(load.accepted), load.failures)
            assert load.given_up == 0, load.failures
            verdict = await check(k, pg_url, pg_schema_cleanup, load.accepted)
            assert verdict.clean, verdict.summary()
