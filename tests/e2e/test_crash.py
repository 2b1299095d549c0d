"""Crash test on real Kafka and PostgreSQL: nothing lost, nothing doubled, order kept.

While a stream of leads flows (a handraiser form, then three behaviour events
sent in order), each consumer service is killed with SIGKILL at a random
moment and restarted (one at a time, then two at once), the Kafka broker is
restarted, and PostgreSQL is restarted. Then the broker is frozen (SIGSTOP: a
long pause or a network partition) until a consumer is caught having committed
work whose events it cannot publish, every consumer and the broker are killed
in that state, and all restart: those events must still go out (the outbox).
Then the SLA monitor is stopped while deadlines come due. Last, every consumer
group is rewound to the start of its topics and everything is consumed again
(a replay, as ops do after an incident): it must change nothing (the inbox).
Afterwards:

- every submission that got a 202 has exactly one assignment, exactly one
  clock of each kind, and at most one alert (and one alert event) per deadline;
- each lead's events were handled exactly once and in order, and each gave
  exactly one score event downstream (with the example rules every accepted
  event changes the score), in order;
- no consumer group has lag, no outbox has rows, no dead-letter topic has records;
- after the broker restarts every group consumes again within 60 s, and after a
  service restart its lag is back to zero within 30 s.

Bounded: about four minutes, loopback only, stops by itself.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from leadrelay.bus.kafka import create_topics
from leadrelay.events import all_topics
from tests.e2e.chaos import (
    CONSUMERS,
    GROUP_TOPICS,
    Kafka,
    Load,
    check,
    restart_service,
    rules,
    script,
    start_consumers_until_caught_up,
    wait_gone,
)
from tests.e2e.distributed import Cluster, cluster

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

FIRST_TOUCH_SECONDS = 10


async def freeze_broker_then_crash(c: Cluster, k: Kafka, pg: str, schema_prefix: str, rng: random.Random) -> float:
    """Freeze the broker (SIGSTOP) until a consumer is caught having committed work while it was
    frozen: that work's events are committed to its database but cannot have reached the broker.
    Then SIGKILL every consumer and the broker, and restart them. Returns the seconds from the
    broker's restart until every group has consumed what was on its topics."""
    pid = int(script("kafka.sh", "pid").strip())
    conn = await asyncpg.connect(pg)
    activities = f'SELECT count(*) FROM "{schema_prefix}scoring".activities'
    freezes = 0
    try:
        while True:
            freezes += 1
            if freezes > 60:
                raise AssertionError("in 60 freezes of the broker no consumer committed work while it was frozen")
            os.kill(pid, signal.SIGSTOP)
            before = await conn.fetchval(activities)  # read after the freeze: nothing before it counts
            await asyncio.sleep(1.0)
            if await conn.fetchval(activities) > before:
                break
            os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(rng.uniform(0.2, 0.8))
    except BaseException:
        os.kill(pid, signal.SIGCONT)  # never leave the broker frozen for the tests that follow
        raise
    finally:
        await conn.close()
    print(f"\nscoring committed work with the broker frozen (freeze {freezes}); killing everything")
    for s in CONSUMERS:
        c.stop(s, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    await asyncio.to_thread(wait_gone, pid)
    await asyncio.to_thread(script, "kafka.sh", "start")
    return await start_consumers_until_caught_up(c, k, timeout=60)


async def replay_everything(c: Cluster, k: Kafka) -> float:
    """Stop the consumers, rewind every group to the start of its topics, start them again and
    wait until all is consumed a second time. Returns the seconds the replay took."""
    for s in CONSUMERS:
        c.stop(s)
    for group in GROUP_TOPICS:
        await k.rewind(group)
        assert await k.lag(group) > 0, f"{group} was not rewound"
    return await start_consumers_until_caught_up(c, k, timeout=120)


@pytest.fixture
def restartable_infra() -> None:
    if os.environ.get("LEADRELAY_TEST_RESTART_INFRA") != "1":
        pytest.skip("restarts the local Kafka and PostgreSQL: set LEADRELAY_TEST_RESTART_INFRA=1 (make test does)")


async def test_crashes_and_restarts_lose_and_double_nothing(
    tmp_path: Path, pg_url: str, kafka_bootstrap: str, pg_schema_cleanup: str, restartable_infra: None
) -> None:
    prefix = pg_schema_cleanup.rstrip("_")
    await create_topics(kafka_bootstrap, all_topics(), prefix=f"{prefix}.")
    k = Kafka(kafka_bootstrap, f"{prefix}.")
    rng = random.Random(int(time.time()))
    catch_up: dict[str, float] = {}
    with cluster(tmp_path, pg_url, kafka_bootstrap, prefix, rules(tmp_path, FIRST_TOUCH_SECONDS)) as c:
        load = Load(c, seed=rng.randrange(1 << 30))

        async def chaos() -> dict[str, float]:
            await asyncio.sleep(2)
            figures: dict[str, float] = {}
            plan: list[list[str]] = [[s] for s in CONSUMERS] + [rng.sample(CONSUMERS, 2)]
            for services in plan:
                await asyncio.sleep(rng.uniform(2.0, 5.0))
                await restart_service(c, k, services, catch_up)
            await asyncio.sleep(2)
            script("kafka.sh", "restart")
            await asyncio.sleep(3)  # let post-restart records pile up: the groups must consume them
            figures["kafka_restart_catch_up"] = await k.caught_up(list(GROUP_TOPICS), timeout=60)
            await asyncio.sleep(2)
            script("postgres.sh", "restart")
            figures["postgres_restart_catch_up"] = await k.caught_up(list(GROUP_TOPICS), timeout=60)
            await asyncio.sleep(2)
            figures["frozen_broker_crash_catch_up"] = await freeze_broker_then_crash(
                c, k, pg_url.replace("postgresql+asyncpg://", "postgresql://"), pg_schema_cleanup, rng
            )
            await asyncio.sleep(2)
            return figures

        done = asyncio.Event()
        load_task = asyncio.create_task(load.run_until(done, per_second=4.5))
        try:
            figures = await chaos()
        finally:
            done.set()
            await load_task

        # The SLA monitor is down while first-touch deadlines come due.
        c.stop("sla-monitor", signal.SIGKILL)
        await load.run(1000, 20, 3)
        await asyncio.sleep(FIRST_TOUCH_SECONDS + 3)
        c.start("sla-monitor")
        await asyncio.to_thread(c.wait_ready, ["sla-monitor"])
        await asyncio.sleep(FIRST_TOUCH_SECONDS + 2)  # every clock is now overdue
        await k.caught_up(list(GROUP_TOPICS), timeout=60)
        await asyncio.sleep(2)  # the SLA timer's last tick and the outbox relays
        await load.client.aclose()
        figures["replay"] = await replay_everything(c, k)
        await asyncio.sleep(2)

        print(f"\naccepted leads: {len(load.accepted)}; client retries: {dict(load.failures)}")
        print(f"catch-up after SIGKILL+restart (s): {catch_up}; infra: {figures}")
        # The invariants first: when a catch-up is also too slow, both are worth knowing.
        verdict = await check(k, pg_url, pg_schema_cleanup, load.accepted)
        print(f"invariants: {verdict.summary()}")
        assert verdict.clean, verdict.summary()
        assert len(load.accepted) >= 200, (len(load.accepted), load.failures)
        assert all(v <= 30 for v in catch_up.values()), catch_up
        assert figures["kafka_restart_catch_up"] <= 60 and figures["frozen_broker_crash_catch_up"] <= 60, figures
