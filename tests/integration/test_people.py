"""The people at both ends: a rep's own queue (GET /v1/me/leads) and reps' availability set at
run time (PUT /v1/reps/{rep_id}/availability), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import shlex
from datetime import timedelta
from typing import Any

import httpx

from leadrelay.cli import sign_in_banner
from leadrelay.settings import Settings
from tests.harness import Harness, running

NORDVIK = {"company": "Nordvik Logistics AB", "country": "SE"}  # a named account: Astrid's


async def submit(h: Harness, form: str, email: str, **fields: str) -> str:
    r = await h.as_(None).post(f"/v1/forms/{form}/submissions", json={"email": email, **fields})
    assert r.status_code == 202, r.text
    return str(r.json()["lead_id"])


async def queue(h: Harness, who: str, query: str = "") -> list[dict[str, Any]]:
    r = await h.as_(who).get("/v1/me/leads" + query)
    assert r.status_code == 200, r.text
    return list(r.json())


async def test_a_reps_queue_most_urgent_first(settings: Settings) -> None:
    async with running(settings) as h:
        first = await submit(h, "demo-request", "ann.andersson@nordvik.se", first_name="Ann", **NORDVIK)
        await h.wait_for(f"/v1/leads/{first}/sla")
        h.clock.advance(timedelta(minutes=30))
        second = await submit(h, "demo-request", "bo.berg@nordvik.se", first_name="Bo", **NORDVIK)
        await h.wait_for(f"/v1/leads/{second}/sla")
        await h.settle()
        h.clock.advance(timedelta(minutes=45))  # first: 15 min overdue; second: 15 min left
        await h.settle()

        items = await queue(h, "astrid.lindqvist")
        assert [i["lead_id"] for i in items] == [first, second]
        top = items[0]
        assert top["status"] == "new" and top["rep_id"] == "astrid.lindqvist" and top["territory"] == "nordics"
        assert top["next_deadline"]["name"] == "first_touch"
        assert top["next_deadline"]["status"] == "breached"
        assert top["next_deadline"]["seconds_left"] == -15 * 60
        assert items[1]["next_deadline"]["status"] == "running"
        handoff = top["handoff"]
        assert handoff["contact"]["first_name"] == "Ann"
        assert handoff["account"] == "Nordvik Logistics"
        assert handoff["qualification"] == "handraiser"
        assert [a["type"] for a in handoff["last_activities"]] == ["form_submitted"]
        assert [i["lead_id"] for i in await queue(h, "astrid.lindqvist", "?sla=breached")] == [first]
        assert [i["lead_id"] for i in await queue(h, "astrid.lindqvist", "?sla=running")] == [second]

        # A touch moves the first lead's next deadline to the disposition (2 days): now the
        # second lead is the more urgent one.
        r = await h.as_("astrid.lindqvist").post(f"/v1/leads/{first}/touches", json={"channel": "call"})
        assert r.status_code == 202, r.text
        await h.settle()
        items = await queue(h, "astrid.lindqvist")
        assert [i["lead_id"] for i in items] == [second, first]
        assert items[1]["status"] == "touched" and items[1]["touches"] == 1
        assert items[1]["next_deadline"]["name"] == "disposition"
        assert items[1]["next_deadline"]["status"] == "running"
        assert [i["lead_id"] for i in await queue(h, "astrid.lindqvist", "?status=new")] == [second]
        assert [i["lead_id"] for i in await queue(h, "astrid.lindqvist", "?status=touched")] == [first]

        # Accepted: still Astrid's (no deadline left, so last); recycled: out of the queue.
        r = await h.as_("astrid.lindqvist").post(f"/v1/leads/{first}/dispositions", json={"disposition": "accepted"})
        assert r.status_code == 202
        r = await h.as_("karin.ek").post(
            f"/v1/leads/{second}/dispositions", json={"disposition": "recycle", "reason": "wrong person"}
        )
        assert r.status_code == 202
        await h.settle()
        items = await queue(h, "astrid.lindqvist")
        assert [(i["lead_id"], i["status"], i["next_deadline"]) for i in items] == [(first, "accepted", None)]
        assert [i["lead_id"] for i in await queue(h, "astrid.lindqvist", "?status=accepted")] == [first]

        # The manager sees her territories' queue; another manager and another rep see none of it.
        assert [i["lead_id"] for i in await queue(h, "karin.ek")] == [first]
        assert [i["lead_id"] for i in await queue(h, "karin.ek", "?territory=nordics")] == [first]
        assert await queue(h, "karin.ek", "?territory=benelux") == []
        assert await queue(h, "tom.weber") == []
        assert await queue(h, "mikko.virtanen") == []
        r = await h.as_("karin.ek").get("/v1/me/leads?territory=dach")
        assert r.status_code == 403
        r = await h.as_("astrid.lindqvist").get("/v1/me/leads?status=maybe")
        assert r.status_code == 422

        # Handed back and qualified again: a new cycle, back in a queue with fresh deadlines.
        h.clock.advance(timedelta(days=30))
        await submit(h, "demo-request", "bo.berg@nordvik.se", **NORDVIK)
        await h.wait_for(f"/v1/leads/{second}/assignment", cycle=2)
        await h.settle()
        items = await queue(h, "astrid.lindqvist")
        assert [(i["lead_id"], i["cycle"], i["status"]) for i in items][0] == (second, 2, "new")
        assert items[0]["next_deadline"]["seconds_left"] == 3600


async def test_availability_set_at_run_time_is_honoured_at_once(settings: Settings) -> None:
    async with running(settings) as h:

        async def assign(n: int, tag: str) -> list[str]:
            leads = [await submit(h, "demo-request", f"lead{i}@{tag}{i}-test.se", country="SE") for i in range(n)]
            return [(await h.wait_for(f"/v1/leads/{lead}/assignment"))["rep_id"] for lead in leads]

        async def mikko() -> dict[str, Any]:
            territories = (await h.as_("ops.desk").get("/v1/territories")).json()
            nordics = next(t for t in territories if t["id"] == "nordics")
            return next(r for r in nordics["reps"] if r["id"] == "mikko.virtanen")

        assert (await mikko())["available"] is True
        assert (await mikko())["status"] == "available"
        assert ((await mikko())["set_by"], (await mikko())["set_by_name"]) == (None, None)
        until = h.clock.now() + timedelta(hours=1)
        r = await h.as_("karin.ek").put(
            "/v1/reps/mikko.virtanen/availability", json={"status": "out_of_office", "until": until.isoformat()}
        )
        assert r.status_code == 200, r.text
        assert r.json()["available"] is False and r.json()["set_by"] == "karin.ek"
        assert r.json()["set_by_name"] == "Karin Ek"
        state = await mikko()
        assert (state["available"], state["status"], state["set_by"]) == (False, "out_of_office", "karin.ek")
        assert state["set_by_name"] == "Karin Ek"
        # No restart: the next Nordic leads all go to Astrid.
        assert await assign(4, "away") == ["astrid.lindqvist"] * 4

        # `until` passed: the rules' default (available) applies again, and round robin resumes.
        h.clock.advance(timedelta(hours=2))
        assert (await mikko())["available"] is True
        assert sorted(await assign(2, "back")) == ["astrid.lindqvist", "mikko.virtanen"]

        # Away with no end, then available again.
        r = await h.as_("ops.desk").put("/v1/reps/mikko.virtanen/availability", json={"status": "away"})
        assert r.status_code == 200
        assert await assign(2, "again") == ["astrid.lindqvist"] * 2
        r = await h.as_("rita.admin").put("/v1/reps/mikko.virtanen/availability", json={"status": "available"})
        assert r.status_code == 200 and r.json()["available"] is True

        # Who may: ops, admins and the rep's own managers; never the rep, another manager, a source.
        for who, code in [("mikko.virtanen", 403), ("tom.weber", 403), ("crm", 403), (None, 401)]:
            r = await h.as_(who).put("/v1/reps/mikko.virtanen/availability", json={"status": "away"})
            assert r.status_code == code, (who, r.text)
        for body, code in [
            ({"status": "on_the_beach"}, 422),
            ({"status": "away", "until": "2026-01-05T08:00:00"}, 422),  # no timezone
            ({"status": "away", "until": (h.clock.now() - timedelta(minutes=1)).isoformat()}, 422),  # past
            ({"status": "away", "extra": 1}, 422),
        ]:
            r = await h.as_("ops.desk").put("/v1/reps/mikko.virtanen/availability", json=body)
            assert r.status_code == code, (body, r.text)
        r = await h.as_("ops.desk").put("/v1/reps/nobody/availability", json={"status": "away"})
        assert r.status_code == 404


async def test_the_first_lead_make_run_suggests_lands_in_the_first_reps_queue(settings: Settings) -> None:
    """`leadrelay run` prints a command that posts a lead for a newcomer to work: it must be
    accepted and land in the queue of a rep whose sign-in link is printed above it."""
    async with running(settings) as h:
        banner = sign_in_banner(h.auth, {}, "http://127.0.0.1:8000", settings.data_dir)
        command = next(line.strip() for line in banner.splitlines() if "/submissions" in line)
        argv = shlex.split(command)
        url = httpx.URL(argv[argv.index("-XPOST") + 1])
        body = json.loads(argv[argv.index("-d") + 1])
        assert "Astrid Lindqvist's queue" in banner and "/login?token=" in banner
        r = await h.as_(None).post(url.path, json=body)
        assert r.status_code == 202, r.text
        lead = str(r.json()["lead_id"])
        await h.wait_for(f"/v1/leads/{lead}/sla")
        mine = await queue(h, "astrid.lindqvist")
        assert [(x["lead_id"], x["handoff"]["qualification"]) for x in mine] == [(lead, "handraiser")]
