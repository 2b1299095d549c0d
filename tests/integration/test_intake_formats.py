"""Across the services (SQLite and PostgreSQL): a repeated submission is recorded once, consent
reaches the lead, the handoff and GET /v1/leads/{id}/consent, the clean-data facts decide what a
free-mail "contact sales" does."""

from __future__ import annotations

import uuid
from datetime import timedelta

from intake.domain import lead_id_for
from leadrelay.settings import Settings
from tests.harness import Harness, running

HUBSPOT = "/submissions/v3/integration/submit/4711/1b2c3d4e-0000-4000-8000-000000000001"


def lead_of(h: Harness, email: str) -> str:
    return lead_id_for(email, uuid.UUID(h.runtime.settings.lead_id_namespace))


def form_activity_rules(score: dict[str, object]) -> list[str]:
    return [str(r["rule"]) for r in score["reasons"] if r["category"] == "engagement"]  # type: ignore[attr-defined,index]


async def test_a_double_submission_is_recorded_once_and_again_after_the_window(settings: Settings) -> None:
    async with running(settings) as h:
        anon = h.as_(None)
        fields = {"email": "Jane.Doe+webinar@googlemail.com", "job_title": "Engineer"}
        for _ in range(2):  # a double click
            assert (await anon.post("/v1/forms/webinar/submissions", json=fields)).status_code == 202
        # The same person, as Gmail folds her: the same lead.
        again = {"email": "janedoe@gmail.com", "phone": "+46701234567"}
        assert (await anon.post("/v1/forms/webinar/submissions", json=again)).status_code == 202
        lead = lead_of(h, "jane.doe+webinar@googlemail.com")
        assert lead == lead_of(h, "janedoe@gmail.com")
        await h.settle()
        score = (await h.client.get(f"/v1/leads/{lead}/score")).json()
        assert form_activity_rules(score) == ["filled in a form (x1)"]
        assert "reachable by phone" in [r["rule"] for r in score["reasons"]]  # the newer details are kept
        h.clock.advance(timedelta(minutes=11))
        assert (await anon.post("/v1/forms/webinar/submissions", json=fields)).status_code == 202
        await h.settle()
        score = (await h.client.get(f"/v1/leads/{lead}/score")).json()
        assert form_activity_rules(score) == ["filled in a form (x2)"]


async def test_consent_is_evidence_on_the_lead_and_in_the_handoff(settings: Settings) -> None:
    async with running(settings) as h:
        body = {
            "fields": [
                {"name": "email", "value": "ceo@brouwerij.nl"},
                {"name": "country", "value": "NL"},
                {"name": "jobtitle", "value": "CEO"},
            ],
            "context": {"pageUri": "https://www.leadrelay.example/demo", "hutk": "h1"},
            "legalConsentOptions": {"consent": {"consentToProcess": True, "text": "I agree to be contacted."}},
        }
        assert (await h.as_(None).post(HUBSPOT, json=body)).status_code == 200
        lead = lead_of(h, "ceo@brouwerij.nl")
        assignment = await h.wait_for(f"/v1/leads/{lead}/assignment")
        [evidence] = assignment["handoff"]["consent"]
        assert (evidence["text"], evidence["source"], evidence["form_id"]) == (
            "I agree to be contacted.",
            "hubspot",
            "demo-request",
        )
        assert evidence["page_url"] == "https://www.leadrelay.example/demo"
        r = await h.client.get(f"/v1/leads/{lead}/consent")
        assert r.status_code == 200 and r.json() == [evidence]
        rep = assignment["rep_id"]
        await h.settle()  # scoring learns whose lead it is from leads.assigned, after routing has it
        assert (await h.as_(rep).get(f"/v1/leads/{lead}/consent")).status_code == 200
        assert (await h.as_("astrid.lindqvist").get(f"/v1/leads/{lead}/consent")).status_code == 403


async def test_free_mail_contact_sales_waits_for_its_score_and_a_disposable_is_disqualified(
    settings: Settings,
) -> None:
    async with running(settings) as h:
        anon = h.as_(None)
        company = {"job_title": "CTO", "company": "Acme", "company_size": "300", "country": "DE"}
        for email in ("jane@gmail.com", "jane@acme-robotics.de", "jane@mailinator.com"):
            r = await anon.post("/v1/forms/contact-sales/submissions", json={"email": email, **company})
            assert r.status_code == 202
        await h.settle()
        free = (await h.client.get(f"/v1/leads/{lead_of(h, 'jane@gmail.com')}/score")).json()
        business = (await h.client.get(f"/v1/leads/{lead_of(h, 'jane@acme-robotics.de')}/score")).json()
        throwaway = (await h.client.get(f"/v1/leads/{lead_of(h, 'jane@mailinator.com')}/score")).json()
        assert (business["status"], business["qualification"]) == ("handraiser", "handraiser")
        assert (free["status"], free["qualified"], free["fit"]) == ("lead", False, 25)
        assert any("not handed over at once" in r["rule"] for r in free["reasons"])
        assert throwaway["status"] == "disqualified"
        assert (await h.client.get(f"/v1/leads/{lead_of(h, 'jane@gmail.com')}/assignment")).status_code == 404
