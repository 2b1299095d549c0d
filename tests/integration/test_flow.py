"""The whole lead flow through all five services, in one process, on SQLite and on PostgreSQL.

form -> score -> assignment -> SLA clock -> alert when the deadline passes -> touch -> disposition.
Time is a FrozenClock moved by the test, so deadlines of hours pass instantly.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from leadrelay.settings import Settings
from tests.harness import Harness, running

ANNA = {
    "email": "Anna.Berg@nordvik-test.se",
    "first_name": "Anna",
    "last_name": "Berg",
    "company": "Berg & Söner AB",
    "job_title": "Head of Operations",
    "country": "Sweden",
    "phone": "070-123 45 67",
    "company_size": "250",
}


async def submit(h: Harness, form: str, fields: dict[str, Any]) -> str:
    r = await h.client.post(f"/v1/forms/{form}/submissions", json=fields)
    assert r.status_code == 202, r.text
    return str(r.json()["lead_id"])


async def alerts_for(h: Harness, lead: str) -> list[dict[str, Any]]:
    body = await h.wait_for(f"/v1/leads/{lead}/sla")
    return list(body["alerts"])


async def test_handraiser_assigned_alerted_once_then_touched_and_accepted(settings: Settings) -> None:
    async with running(settings) as h:
        lead = await submit(h, "demo-request", ANNA)
        score = await h.wait_for(f"/v1/leads/{lead}/score", status="handraiser")
        assert score["qualified"] is True
        assert any(r["category"] == "handraiser" for r in score["reasons"])

        assignment = await h.wait_for(f"/v1/leads/{lead}/assignment")
        assert assignment["territory"] == "nordics"
        assert assignment["rep_id"] in {"astrid.lindqvist", "mikko.virtanen"}
        handoff = assignment["handoff"]
        assert handoff["contact"]["phone"] == "+46701234567"
        assert handoff["contact"]["email"] == "anna.berg@nordvik-test.se"
        assert handoff["qualification"] == "handraiser"
        assert [a["type"] for a in handoff["activities"]] == ["form_submitted"]

        sla = await h.wait_for(f"/v1/leads/{lead}/sla")
        clocks = {c["name"]: c for c in sla["clocks"]}
        assert set(clocks) == {"first_touch", "disposition"}
        assert all(c["status"] == "running" for c in clocks.values())

        # The handraiser first-touch deadline is 1 h: pass it, and the alert fires once.
        h.clock.advance(timedelta(minutes=61))
        await h.wait_for(f"/v1/leads/{lead}/sla")
        for _ in range(100):
            if await alerts_for(h, lead):
                break
            await h.settle()
        alerts = await alerts_for(h, lead)
        assert [a["clock"] for a in alerts] == ["first_touch"]
        h.clock.advance(timedelta(minutes=30))
        await h.settle()
        assert len(await alerts_for(h, lead)) == 1, "an alert fired twice"
        feed = (await h.client.get("/v1/alerts")).json()
        assert [(a["lead_id"], a["clock"]) for a in feed] == [(lead, "first_touch")]

        # The rep signs in: touches and dispositions are credited to the caller.
        rep = h.as_(assignment["rep_id"])
        r = await rep.post(f"/v1/leads/{lead}/touches", json={"channel": "call", "note": "left voicemail"})
        assert r.status_code == 202, r.text
        r = await rep.post(f"/v1/leads/{lead}/dispositions", json={"disposition": "accepted"})
        assert r.status_code == 202, r.text
        await h.settle()
        sla = await h.wait_for(f"/v1/leads/{lead}/sla")
        clocks = {c["name"]: c for c in sla["clocks"]}
        assert clocks["first_touch"]["status"] == "breached"
        assert clocks["disposition"]["status"] == "met"
        # Far past every deadline: nothing more fires once sales has answered.
        h.clock.advance(timedelta(days=10))
        await h.settle()
        assert len(await alerts_for(h, lead)) == 1
        await h.wait_for(f"/v1/leads/{lead}/score", status="accepted")
        funnel = (await h.client.get("/v1/metrics/funnel")).json()
        assert funnel["handed_to_sales"] == 1
        assert funnel["dispositions"]["accepted"] == 1
        assert funnel["acceptance_rate"] == 1.0
        assert funnel["median_seconds_to_first_touch"] == 91 * 60


async def test_touch_in_time_stops_the_clock_and_no_alert_fires(settings: Settings) -> None:
    async with running(settings) as h:
        lead = await submit(
            h,
            "contact-sales",
            {**ANNA, "email": "jan.devries@bakker-test.nl", "country": "NL", "phone": "+31 20 123 4567"},
        )
        assignment = await h.wait_for(f"/v1/leads/{lead}/assignment")
        assert assignment["territory"] == "benelux"
        await h.wait_for(f"/v1/leads/{lead}/sla")
        h.clock.advance(timedelta(minutes=20))
        await h.settle()
        r = await h.as_(assignment["rep_id"]).post(f"/v1/leads/{lead}/touches", json={"channel": "email"})
        assert r.status_code == 202
        await h.settle()
        h.clock.advance(timedelta(hours=2))
        await h.settle()
        sla = await h.wait_for(f"/v1/leads/{lead}/sla")
        clocks = {c["name"]: c["status"] for c in sla["clocks"]}
        assert clocks == {"first_touch": "met", "disposition": "running"}
        assert sla["alerts"] == []


async def test_behaviour_makes_an_mql_and_recycling_sends_it_back_to_marketing(settings: Settings) -> None:
    async with running(settings) as h:
        fields = {
            **ANNA,
            "email": "juergen.gross@hanse-test.de",
            "country": "DE",
            "phone": "+49 30 1234567",
            "first_name": "Jürgen",
            "last_name": "Groß",
            "job_title": "IT-Leiter",
            "company_size": "900",
        }
        lead = await submit(h, "whitepaper", fields)
        score = await h.wait_for(f"/v1/leads/{lead}/score")
        assert score["status"] == "lead"
        r = await h.client.get(f"/v1/leads/{lead}/assignment")
        assert r.status_code == 404
        # Pricing views and email clicks push it over the threshold of 60.
        for i, url in enumerate(["https://leadrelay.example/pricing", "https://leadrelay.example/pricing?plan=pro"]):
            r = await h.as_("website-tracking").post(
                "/v1/events",
                json={"type": "page_viewed", "email": fields["email"], "url": url, "message_id": f"pv-{i}"},
            )
            assert r.status_code == 202, r.text
        for i in range(3):
            r = await h.as_("website-tracking").post(
                "/v1/events", json={"type": "email_clicked", "lead_id": lead, "message_id": f"ec-{i}"}
            )
            assert r.status_code == 202, r.text
        score = await h.wait_for(f"/v1/leads/{lead}/score", status="mql")
        assert score["score"] >= 60
        assignment = await h.wait_for(f"/v1/leads/{lead}/assignment")
        assert assignment["territory"] == "dach"
        assert assignment["handoff"]["qualification"] == "mql"
        # Fit 35 + a form (5) + two pricing views (30) crossed 60: the handoff says why.
        history = assignment["handoff"]["activities"]
        assert [a["type"] for a in history] == ["form_submitted", "page_viewed", "page_viewed"]
        assert "/pricing" in history[-1]["url"]
        suppressed = (await h.client.get("/v1/suppressions")).json()
        assert [s["lead_id"] for s in suppressed] == [lead]
        await h.settle()  # feedback learns of the assignment from the bus, a few milliseconds later

        # Their manager records it for the rep (Tom Weber manages DACH): both are on record.
        manager = h.as_("tom.weber")
        r = await manager.post(f"/v1/leads/{lead}/dispositions", json={"disposition": "recycle"})
        assert r.status_code == 422, "recycle needs a reason"
        r = await manager.post(
            f"/v1/leads/{lead}/dispositions", json={"disposition": "recycle", "reason": "budget frozen until Q3"}
        )
        assert r.status_code == 202
        feedback = (await h.client.get(f"/v1/leads/{lead}/feedback")).json()
        assert [(d["rep_id"], d["logged_by"]) for d in feedback["dispositions"]] == [
            (assignment["rep_id"], {"kind": "person", "id": "tom.weber", "role": "manager", "name": "Tom Weber"})
        ]
        await h.wait_for(f"/v1/leads/{lead}/score", status="recycled")
        await h.settle()
        assert (await h.client.get("/v1/suppressions")).json() == []
        board = (await h.client.get("/v1/review-board")).json()
        assert [(b["lead_id"], b["disposition"], b["reason"]) for b in board] == [
            (lead, "recycle", "budget frozen until Q3")
        ]
        # Back in marketing, old engagement no longer counts; asking for a demo hands it over again.
        h.clock.advance(timedelta(days=30))
        await submit(h, "demo-request", fields)
        second = await h.wait_for(f"/v1/leads/{lead}/assignment", cycle=2)
        assert second["handoff"]["qualification"] == "handraiser"
        assert second["status"] == "active"


async def test_retries_and_disqualified_leads_are_never_handed_over(settings: Settings) -> None:
    async with running(settings) as h:
        headers = {"Idempotency-Key": "form-retry-1"}
        one = await h.client.post("/v1/forms/demo-request/submissions", json=ANNA, headers=headers)
        two = await h.client.post("/v1/forms/demo-request/submissions", json=ANNA, headers=headers)
        assert one.json() == two.json()
        competitor = await submit(h, "demo-request", {**ANNA, "email": "spy@rivalrelay.com"})
        await h.settle()
        lead = one.json()["lead_id"]
        score = await h.wait_for(f"/v1/leads/{lead}/score", status="handraiser")
        # The retry was dropped by the inbox: one form activity, not two.
        assert any(r["rule"] == "filled in a form (x1)" for r in score["reasons"]), score["reasons"]
        bad = await h.wait_for(f"/v1/leads/{competitor}/score", status="disqualified")
        assert any(r["category"] == "disqualifier" and r["rule"] == "competitor" for r in bad["reasons"])
        assert (await h.client.get(f"/v1/leads/{competitor}/assignment")).status_code == 404
        r = await h.client.post(f"/v1/leads/{competitor}/touches", json={"rep_id": "olivia.smith", "channel": "call"})
        assert r.status_code == 404


async def test_round_robin_spreads_a_territory_evenly(settings: Settings) -> None:
    async with running(settings) as h:
        leads = [
            await submit(h, "demo-request", {"email": f"lead{i}@kunde{i}-test.de", "country": "AT"}) for i in range(6)
        ]
        reps = [(await h.wait_for(f"/v1/leads/{lead}/assignment"))["rep_id"] for lead in leads]
        assert sorted(reps) == ["jonas.becker"] * 3 + ["lena.huber"] * 3, reps
        territories = {t["id"]: t for t in (await h.client.get("/v1/territories")).json()}
        assert {r["id"]: r["open_leads"] for r in territories["dach"]["reps"]} == {"jonas.becker": 3, "lena.huber": 3}


async def test_deadlines_missed_while_the_monitor_was_down_fire_once_on_restart(settings: Settings) -> None:
    async with running(settings) as h:
        lead = await submit(
            h,
            "demo-request",
            {**ANNA, "email": "wang.fang@shanghai-test.cn", "country": "CN", "phone": "+86 21 6123 4567"},
        )
        assignment = await h.wait_for(f"/v1/leads/{lead}/assignment")
        assert assignment["territory"] == "greater-china"
        await h.wait_for(f"/v1/leads/{lead}/sla")
        clock = h.clock
    # Everything is down for three days; on restart both deadlines are overdue.
    clock.advance(timedelta(days=3))
    for _ in range(2):
        async with running(settings, services=["sla-monitor"], clock=clock) as h:
            for _ in range(200):
                sla = (await h.client.get(f"/v1/leads/{lead}/sla")).json()
                if len(sla["alerts"]) == 2:
                    break
                await h.settle()
            assert sorted(a["clock"] for a in sla["alerts"]) == ["disposition", "first_touch"]
