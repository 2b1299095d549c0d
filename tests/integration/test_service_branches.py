"""Branches of one service that the whole flow rarely takes, driven by events put on the bus
directly, on SQLite and on real PostgreSQL: a requalification overtaking its recycle (routing),
feedback overtaking its assignment (sla-monitor), a handler bug failing readiness (runtime)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from leadrelay.events import (
    Channel,
    Contact,
    Envelope,
    Event,
    Handoff,
    LeadAssigned,
    LeadQualified,
    Qualification,
    TouchLogged,
)
from leadrelay.settings import Settings
from tests.harness import Harness, running

CONTACT = Contact(email="eva.lund@lundgren.se", first_name="Eva", last_name="Lund", country="SE", company="Lundgren AB")


async def put(h: Harness, data: Event) -> str:
    env = Envelope.new(data, source="/test", time=h.clock.now())
    await h.bus.publish([env.to_record()])
    return env.id


def qualified(lead: str, cycle: int, h: Harness) -> LeadQualified:
    return LeadQualified(
        lead_id=lead,
        qualification=Qualification.MQL,
        cycle=cycle,
        score=70,
        reasons=[],
        contact=CONTACT,
        activities=[],
        qualified_at=h.clock.now(),
    )


async def open_leads(h: Harness) -> dict[str, int]:
    body = (await h.client.get("/v1/territories")).json()
    return {r["id"]: r["open_leads"] for t in body for r in t["reps"]}


async def test_a_requalification_that_overtakes_its_recycle_releases_the_previous_cycle(settings: Settings) -> None:
    lead = str(uuid.uuid4())
    async with running(settings, services=["routing"]) as h:
        await put(h, qualified(lead, 1, h))
        first = await h.wait_for(f"/v1/leads/{lead}/assignment", cycle=1, status="active")
        assert sum((await open_leads(h)).values()) == 1

        h.clock.advance(timedelta(days=30))
        await put(h, qualified(lead, 2, h))  # its recycle (on leads.feedback) has not arrived yet
        await put(h, qualified(lead, 1, h))  # and a stale copy of the first qualification
        second = await h.wait_for(f"/v1/leads/{lead}/assignment", cycle=2, status="active")
        await h.settle()
        assert second["assigned_at"] > first["assigned_at"]
        loads = await open_leads(h)
        assert sum(loads.values()) == 1, f"the first cycle still counts against a rep: {loads}"
        suppressed = (await h.client.get("/v1/suppressions")).json()
        assert [s["lead_id"] for s in suppressed] == [lead]
        assigned = await h.bus.read_topic("leads.assigned")
        assert len(assigned) == 2, "a stale qualification assigned the lead again"


async def test_feedback_that_overtakes_its_assignment_stops_the_clocks_it_meets(settings: Settings) -> None:
    lead = str(uuid.uuid4())
    async with running(settings, services=["sla-monitor"]) as h:
        assigned_at = h.clock.now()
        h.clock.advance(timedelta(minutes=5))
        # The rep's touch (leads.feedback) is handled before the assignment (leads.assigned).
        await put(
            h,
            TouchLogged(lead_id=lead, rep_id="astrid.lindqvist", channel=Channel.CALL, touched_at=h.clock.now()),
        )
        await h.settle()
        handoff = Handoff(
            contact=CONTACT,
            qualification=Qualification.HANDRAISER,
            score=40,
            reasons=[],
            activities=[],
            matched_by="territory",
        )
        await put(
            h,
            LeadAssigned(
                lead_id=lead,
                cycle=1,
                rep_id="astrid.lindqvist",
                territory="nordics",
                assigned_at=assigned_at,
                handoff=handoff,
            ),
        )
        sla = await h.wait_for(f"/v1/leads/{lead}/sla")
        clocks = {c["name"]: c["status"] for c in sla["clocks"]}
        assert clocks == {"first_touch": "met", "disposition": "running"}
        h.clock.advance(timedelta(hours=2))  # past the handraiser's one-hour first-touch deadline
        await h.settle()
        assert (await h.client.get(f"/v1/leads/{lead}/sla")).json()["alerts"] == []


async def test_a_handler_bug_fails_readiness_with_the_error_and_the_backlog_follows_the_fix(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from routing import service as routing_service

    real = routing_service.choose
    bug = {"deployed": True}

    def buggy(*args: Any, **kwargs: Any) -> Any:
        if bug["deployed"]:
            raise AttributeError("'NoneType' object has no attribute 'territory'")
        return real(*args, **kwargs)

    monkeypatch.setattr(routing_service, "choose", buggy)
    settings = settings.model_copy(update={"consumer_retry_max_seconds": 0.2})
    leads = [str(uuid.uuid4()) for _ in range(3)]
    async with running(settings, services=["routing"]) as h:
        for lead in leads:
            await put(h, qualified(lead, 1, h))
        for _ in range(100):
            ready = await h.client.get("/readyz")
            if ready.status_code == 503:
                break
            await asyncio.sleep(0.05)
        assert ready.status_code == 503
        assert "no attribute 'territory'" in ready.json()["checks"]["routing.consumer.routing"]
        assert await h.bus.read_topic("leads.scored.dlq") == []
        bug["deployed"] = False
        await h.settle()
        for lead in leads:
            await h.wait_for(f"/v1/leads/{lead}/assignment", cycle=1)
        assert (await h.client.get("/readyz")).status_code == 200
