"""HubSpot, Web-to-Lead and a CSV import (the `leadrelay import` command) on the distributed
services: real Kafka and PostgreSQL, each service its own process."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from intake.domain import lead_id_for
from leadrelay.bus.kafka import create_topics
from leadrelay.events import all_topics
from leadrelay.settings import Settings
from tests.e2e.distributed import cluster
from tests.harness import EXAMPLE

HUBSPOT = "/submissions/v3/integration/submit/4711/1b2c3d4e-0000-4000-8000-000000000001"
LIST = """email,first name,last name,company,title,country,notes
sanne.visser@havenlogistiek-test.nl,Sanne,Visser,Haven Logistiek BV,Directeur,NL,met at booth 12
piet@havenlogistiek-test,Piet,,Haven Logistiek BV,,NL,
"""


def lead_of(email: str) -> str:
    return lead_id_for(email, uuid.UUID(Settings().lead_id_namespace))


def test_hubspot_web_to_lead_and_import_on_kafka_and_postgres(
    tmp_path: Path, pg_url: str, kafka_bootstrap: str, pg_schema_cleanup: str
) -> None:
    prefix = pg_schema_cleanup.rstrip("_")
    asyncio.run(create_topics(kafka_bootstrap, all_topics(), prefix=f"{prefix}."))
    services = ("intake", "scoring", "routing")
    with cluster(tmp_path, pg_url, kafka_bootstrap, prefix, EXAMPLE, services=services) as c:
        body = {
            "fields": [
                {"objectTypeId": "0-1", "name": "email", "value": "jan.bakker@bakker-logistiek-test.nl"},
                {"objectTypeId": "0-1", "name": "jobtitle", "value": "Directeur"},
                {"objectTypeId": "0-2", "name": "name", "value": "Bakker Logistiek B.V."},
                {"objectTypeId": "0-1", "name": "country", "value": "NL"},
            ],
            "context": {"hutk": "hubspot-visitor-1", "pageUri": "https://www.leadrelay.example/demo"},
            "legalConsentOptions": {"consent": {"consentToProcess": True, "text": "I agree to be contacted."}},
        }
        r = c.post("intake", HUBSPOT, as_=None, json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {"inlineMessage": "Thanks! We'll be in touch within the hour."}
        bad = c.post("intake", HUBSPOT, as_=None, json={"fields": [{"name": "email", "value": "nope"}]})
        assert bad.status_code == 400 and bad.json()["errors"][0]["errorType"] == "INVALID_EMAIL"
        lead = lead_of("jan.bakker@bakker-logistiek-test.nl")
        assignment = c.wait_for("routing", f"/v1/leads/{lead}/assignment")
        assert assignment["handoff"]["contact"]["company"] == "Bakker Logistiek B.V."
        assert "hutk" not in assignment["handoff"]["custom"]  # the visitor id joins history, it is no attribute
        assert assignment["handoff"]["consent"][0]["text"] == "I agree to be contacted."
        assert c.get("scoring", f"/v1/leads/{lead}/consent").json()[0]["source"] == "hubspot"

        form = {
            "oid": "00D5e000000LEAD",
            "retURL": "https://www.leadrelay.example/thanks",
            "email": "wouter@brouwerij-test.nl",
            "last_name": "de Wit",
            "country": "NL",
            "00N5e00000BUDGET": "50k",
        }
        r = httpx_post(c.url("intake") + "/servlet/servlet.WebToLead", form)
        assert r.status_code == 303 and r.headers["location"] == "https://www.leadrelay.example/thanks"
        r = httpx_post(c.url("intake") + "/servlet/servlet.WebToLead", {**form, "retURL": "https://evil.example/"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "retURL"]
        lead = lead_of("wouter@brouwerij-test.nl")
        assignment = c.wait_for("routing", f"/v1/leads/{lead}/assignment")  # contact-sales: a handraiser
        assert assignment["handoff"]["custom"]["budget"] == "50k"

        path = tmp_path / "fair.csv"
        path.write_text(LIST, encoding="utf-8")
        command = [sys.executable, "-m", "leadrelay.cli", "import", str(path), "--source", "list-import"]
        env = {**c.env, "LEADRELAY_INTAKE_URL": c.url("intake")}
        lead = lead_of("sanne.visser@havenlogistiek-test.nl")
        for _ in range(2):
            run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)  # noqa: S603
            assert run.returncode == 1, run.stderr  # one row refused
            assert "1 accepted, 1 rejected of 2 rows" in run.stderr
            c.wait_for("scoring", f"/v1/leads/{lead}/score")
        with (tmp_path / "fair.rejected.csv").open(encoding="utf-8") as f:
            [rejected] = list(csv.DictReader(f))
        assert rejected["email"] == "piet@havenlogistiek-test" and rejected["rejected_because"].startswith("email:")
        # A page view behind the second run's event on the lead's partition: once it is scored,
        # the second run's event was handled too, and created nothing.
        view = {"type": "page_viewed", "lead_id": lead, "url": "https://www.leadrelay.example/blog"}
        assert c.post("intake", "/v1/events", as_="website-tracking", json=view).status_code == 202
        deadline = time.monotonic() + 30
        while "any page view (x1)" not in (rules := engagement(c.get("scoring", f"/v1/leads/{lead}/score").json())):
            assert time.monotonic() < deadline, rules
            time.sleep(0.2)
        assert rules == ["any page view (x1)", "filled in a form (x1)"]


def engagement(score: dict[str, Any]) -> list[str]:
    return sorted(str(r["rule"]) for r in score["reasons"] if r["category"] == "engagement")


def httpx_post(url: str, data: dict[str, str]) -> httpx.Response:
    return httpx.post(url, data=data, timeout=30)
