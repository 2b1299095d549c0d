"""Intake's spool on the embedded stack (SQLite, the in-process bus): a broker that fails or is slow
does not close the front door, and what was spooled reaches the topic in order once it is back.
(On real Kafka and PostgreSQL, with the broker and the database stopped: tests/e2e/test_outages.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from leadrelay.bus.memory import MemoryBus
from leadrelay.contract import DependencyDown
from leadrelay.events import LEADS_INTAKE, Envelope, Record
from leadrelay.unavailable import Unavailable
from tests.harness import Harness, running, settings_for


class FlakyBus(MemoryBus):
    """The in-process bus, with a broker that can be made to fail (``down``) or hang (``slow``)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self._answering = asyncio.Event()
        self._answering.set()

    @property
    def slow(self) -> bool:
        return not self._answering.is_set()

    @slow.setter
    def slow(self, value: bool) -> None:
        if value:
            self._answering.clear()
        else:
            self._answering.set()

    async def publish(self, records: Sequence[Record]) -> None:
        await self._answering.wait()
        if self.down:
            raise ConnectionError("broker unreachable")
        await super().publish(records)

    async def ping(self) -> None:
        if self.down or self.slow:
            raise ConnectionError("broker unreachable")
        await super().ping()


async def form(h: Harness, email: str) -> tuple[int, float, dict[str, str]]:
    t0 = time.monotonic()
    r = await h.client.post("/v1/forms/demo-request/submissions", json={"email": email, "country": "SE"})
    return r.status_code, time.monotonic() - t0, r.json()


async def event(h: Harness, email: str, step: int) -> tuple[int, float]:
    t0 = time.monotonic()
    r = await h.client.post(
        "/v1/events", json={"type": "page_viewed", "email": email, "url": f"https://x.example/{step}"}
    )
    return r.status_code, time.monotonic() - t0


def first_copies(bus: MemoryBus) -> dict[str, list[str]]:
    """Each lead's event ids on leads.intake in topic order, a repeated id counted once."""
    out: dict[str, list[str]] = {}
    for rec in bus.records(LEADS_INTAKE):
        env = Envelope.from_record(rec)
        ids = out.setdefault(env.subject, [])
        if env.id not in ids:
            ids.append(env.id)
    return out


async def wait_for_empty_spool(h: Harness, timeout: float = 10) -> None:
    spool = h.runtime.contexts[0].resources.spool
    deadline = time.monotonic() + timeout
    while await spool.holds_events():
        assert time.monotonic() < deadline, "the spool did not drain"
        await asyncio.sleep(0.05)


async def test_a_broker_that_fails_is_spooled_for_and_delivered_in_order_once_back(tmp_path: Path) -> None:
    bus = FlakyBus()
    async with running(settings_for(tmp_path), services=["intake"], bus=bus) as h:
        bus.down = True
        sent: dict[str, list[str]] = {}
        for i in range(3):
            email = f"spool{i}@nordvik-test.se"
            status, took, body = await form(h, email)
            assert status == 202 and took < 3.0, (status, took)
            sent[body["lead_id"]] = [body["event_id"]]
            for step in range(3):
                r = await h.client.post(
                    "/v1/events", json={"type": "page_viewed", "email": email, "url": f"https://x.example/{step}"}
                )
                assert r.status_code == 202, r.text
                sent[body["lead_id"]].append(r.json()["event_id"])
        assert bus.records(LEADS_INTAKE) == []
        spool = h.runtime.contexts[0].resources.spool
        await spool.measure()
        assert spool.depth == 12
        # Ready: the broker is down but the spool takes the events.
        ready = await h.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["bus"] != "ok"
        metrics = (await h.client.get("/metrics")).text
        assert "leadrelay_intake_spool_depth 12.0" in metrics

        bus.down = False
        await wait_for_empty_spool(h)
        assert first_copies(bus) == sent


async def test_a_slow_broker_does_not_hold_up_the_answer_nor_let_later_events_overtake(tmp_path: Path) -> None:
    bus = FlakyBus()
    async with running(settings_for(tmp_path, intake_direct_timeout_ms=200), services=["intake"], bus=bus) as h:
        status, _, body = await form(h, "early@nordvik-test.se")
        assert status == 202
        bus.slow = True  # acknowledgements stop coming: every publish hangs
        email = "slow@nordvik-test.se"
        status, took, slow = await form(h, email)
        assert status == 202 and took < 3.0, (status, took)
        steps = [await event(h, email, step) for step in range(5)]
        assert all(s == 202 and t < 3.0 for s, t in steps), steps
        # The broker answers again: the hung publish completes (a second copy of the form event),
        # the spool drains, and the lead's events are on the topic in the order they were accepted.
        bus.slow = False
        await wait_for_empty_spool(h)
        await h.runtime.contexts[0].relay.drain()  # type: ignore[union-attr]
        order = first_copies(bus)
        assert order[body["lead_id"]] == [body["event_id"]]
        assert order[slow["lead_id"]][0] == slow["event_id"]
        assert len(order[slow["lead_id"]]) == 6


async def test_a_full_spool_refuses_with_503(tmp_path: Path) -> None:
    bus = FlakyBus()
    async with running(settings_for(tmp_path, intake_spool_max_events=2), services=["intake"], bus=bus) as h:
        bus.down = True
        assert (await form(h, "a@nordvik-test.se"))[0] == 202
        assert (await form(h, "b@nordvik-test.se"))[0] == 202
        r = await h.client.post("/v1/forms/demo-request/submissions", json={"email": "c@nordvik-test.se"})
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert r.json()["dependency"] == "kafka"
        assert set(r.json()) == set(DependencyDown.model_fields)  # the body the OpenAPI document gives
        await h.runtime.contexts[0].resources.spool.measure()
        ready = await h.client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["intake.spool"].startswith("full")
        bus.down = False
        await wait_for_empty_spool(h)
        await h.runtime.contexts[0].resources.spool.measure()
        assert (await form(h, "c@nordvik-test.se"))[0] == 202


async def test_always_spool_goes_through_the_spool(tmp_path: Path) -> None:
    bus = FlakyBus()
    async with running(settings_for(tmp_path, intake_spool="always"), services=["intake"], bus=bus) as h:
        status, _, body = await form(h, "always@nordvik-test.se")
        assert status == 202
        await wait_for_empty_spool(h)
        await h.runtime.contexts[0].relay.drain()  # type: ignore[union-attr]
        assert first_copies(bus) == {body["lead_id"]: [body["event_id"]]}


class GatedDatabase:
    """The spool's database, with its first look at the spool held after it read until ``gate`` opens:
    a look that has read, but not yet answered. (Other reads, the measuring job's among them,
    pass.)"""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.gate = asyncio.Event()
        self.held = asyncio.Event()
        self.looks = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Any]:
        task = asyncio.current_task()
        first = False
        if task is not None and task.get_name() == "intake-spool-look":
            self.looks += 1
            first = self.looks == 1
        async with self.db.read() as session:
            yield session
        if first:
            self.held.set()
            await self.gate.wait()


def looks() -> float:
    """``leadrelay_intake_spool_looks_total``, as /metrics shows it."""
    return REGISTRY.get_sample_value("leadrelay_intake_spool_looks_total") or 0.0


async def test_concurrent_requests_share_one_look_at_the_spool(tmp_path: Path) -> None:
    async with running(settings_for(tmp_path), services=["intake"], bus=FlakyBus()) as h:
        spool = h.runtime.contexts[0].resources.spool
        before = looks()
        answers = await asyncio.gather(*(spool.holds_events() for _ in range(50)))
        assert answers == [False] * 50
        # The first caller's look, then one for all who came while it ran (not fifty).
        assert looks() - before <= 2
        statuses = await asyncio.gather(*(form(h, f"many{i}@nordvik-test.se") for i in range(20)))
        assert [s for s, _, _ in statuses] == [202] * 20


async def test_a_request_never_shares_a_look_that_began_before_it(tmp_path: Path) -> None:
    """A look under way may have read the spool before another replica spooled an event: a request
    that arrives then waits for the next look, which sees the event (so the request goes behind it)."""
    bus = FlakyBus()
    async with running(settings_for(tmp_path), services=["intake"], bus=bus) as h:
        bus.down = True  # what is spooled stays there
        spool = h.runtime.contexts[0].resources.spool
        gated = GatedDatabase(spool.db)
        spool.db = gated  # type: ignore[assignment]
        early = asyncio.create_task(spool.holds_events())
        await asyncio.wait_for(gated.held.wait(), timeout=5)  # it read an empty spool
        envelope = h.runtime.contexts[0].resources.intake.activity(
            "page_viewed", email="x@nordvik-test.se", lead_id=None, occurred_at=None, url=None, properties={}
        )
        await spool.put(envelope, "broker_error")  # meanwhile: spooled (by any replica)
        late = asyncio.create_task(spool.holds_events())
        await asyncio.sleep(0.05)
        gated.gate.set()
        assert await early is False
        assert await late is True


async def test_a_look_cancelled_mid_query_answers_its_waiters(tmp_path: Path) -> None:
    """The service stops while a look runs: the requests waiting on that very look get a 503's
    Unavailable at once, not an answer that never comes."""
    async with running(settings_for(tmp_path), services=["intake"], bus=FlakyBus()) as h:
        spool = h.runtime.contexts[0].resources.spool
        gated = GatedDatabase(spool.db)
        spool.db = gated  # type: ignore[assignment]
        waiting = asyncio.create_task(spool.holds_events())
        await asyncio.wait_for(gated.held.wait(), timeout=5)  # the look runs, its waiter in hand
        assert spool._looker is not None
        spool._looker.cancel()
        with pytest.raises(Unavailable, match="stopping"):
            await asyncio.wait_for(waiting, timeout=5)
        assert spool._looker is None


class HeldRelayBus(FlakyBus):
    """A :class:`FlakyBus` whose outbox relay (its task, ``outbox:<service>``) can be held inside a
    publish while ``relay_may_publish`` is clear: the spool is draining, a batch in hand, not yet
    on the topic. Intake's own (direct) publishes pass."""

    def __init__(self) -> None:
        super().__init__()
        self.relay_may_publish = asyncio.Event()
        self.relay_may_publish.set()
        self.relay_held = asyncio.Event()

    async def publish(self, records: Sequence[Record]) -> None:
        task = asyncio.current_task()
        if task is not None and task.get_name().startswith("outbox:") and not self.relay_may_publish.is_set():
            self.relay_held.set()
            await self.relay_may_publish.wait()
        await super().publish(records)


async def test_events_accepted_while_the_spool_drains_queue_behind_it(tmp_path: Path) -> None:
    """Issue 24: the broker is gone, a lead's events are spooled; the broker returns, and while the
    spool drains, new events for that lead (and for others) arrive. They must go behind the spooled
    ones (``Spool.put_if_waiting``), not straight to the broker: every lead's events are on
    leads.intake in the order intake accepted them."""
    bus = HeldRelayBus()
    async with running(settings_for(tmp_path), services=["intake"], bus=bus) as h:
        sent: dict[str, list[str]] = {}

        async def accept_form(email: str) -> None:
            status, _, body = await form(h, email)
            assert status == 202, body
            sent.setdefault(body["lead_id"], []).append(body["event_id"])

        async def accept_event(email: str, step: int) -> None:
            r = await h.client.post(
                "/v1/events", json={"type": "page_viewed", "email": email, "url": f"https://x.example/{step}"}
            )
            assert r.status_code == 202, r.text
            sent.setdefault(r.json()["lead_id"], []).append(r.json()["event_id"])

        bus.down = True  # the broker is gone: what intake accepts now is spooled
        await accept_form("order-a@nordvik-test.se")
        await accept_event("order-a@nordvik-test.se", 1)
        await accept_event("order-a@nordvik-test.se", 2)
        await accept_form("order-b@nordvik-test.se")
        assert bus.records(LEADS_INTAKE) == []

        # The broker is back; the relay starts draining the spool (and is held there, batch in hand).
        bus.relay_may_publish.clear()
        bus.down = False
        h.runtime.contexts[0].relay.wake()  # type: ignore[union-attr]
        await asyncio.wait_for(bus.relay_held.wait(), timeout=30)
        spool = h.runtime.contexts[0].resources.spool
        assert await spool.holds_events()

        # Meanwhile: more events of the spooled leads, and of a new one.
        await accept_event("order-a@nordvik-test.se", 3)
        await accept_event("order-b@nordvik-test.se", 1)
        await accept_form("order-c@nordvik-test.se")
        await accept_event("order-a@nordvik-test.se", 4)
        await accept_event("order-c@nordvik-test.se", 1)

        bus.relay_may_publish.set()
        await wait_for_empty_spool(h)
        await h.runtime.contexts[0].relay.drain()  # type: ignore[union-attr]
        assert first_copies(bus) == sent
