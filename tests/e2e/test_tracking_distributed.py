"""The unmodified Segment and RudderStack SDKs against intake in distributed mode (every service
its own process, real Kafka and PostgreSQL): anonymous page views, then an identify, and the
lead's score counts them; a later call of the joined visitor and a handraising track."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import rudderstack.analytics as rudder
import segment.analytics as segment

from intake.domain import lead_id_for
from leadrelay.bus.kafka import create_topics
from leadrelay.events import all_topics
from leadrelay.settings import Settings
from tests.e2e.distributed import cluster
from tests.harness import EXAMPLE, SOURCE_KEYS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]


def reasons(score: dict[str, Any]) -> dict[str, int]:
    return {r["rule"]: r["points"] for r in score["reasons"]}


def test_sdks_on_kafka_and_postgres(tmp_path: Path, pg_url: str, kafka_bootstrap: str, pg_schema_cleanup: str) -> None:
    prefix = pg_schema_cleanup.rstrip("_")
    asyncio.run(create_topics(kafka_bootstrap, all_topics(), prefix=f"{prefix}."))
    namespace = uuid.UUID(Settings().lead_id_namespace)
    with cluster(tmp_path, pg_url, kafka_bootstrap, prefix, EXAMPLE) as c:
        errors: list[Any] = []
        seg = segment.Client(
            SOURCE_KEYS["website"], host=c.url("intake"), sync_mode=True, on_error=lambda e, b: errors.append(e)
        )
        rud = rudder.Client(
            SOURCE_KEYS["website"], host=c.url("intake"), sync_mode=True, on_error=lambda e, b: errors.append(e)
        )
        for page in ("/pricing", "/pricing", "/customers"):
            seg.page(anonymous_id="dist-anon", properties={"url": f"https://leadrelay.example{page}"})
        time.sleep(1.0)  # the visitor's page views are kept before anyone knows who it is
        email = "dirk.dist@dist-test.nl"
        lead = lead_id_for(email, namespace)
        assert c.get("scoring", f"/v1/leads/{lead}/score").status_code == 404
        rud.identify(user_id=email, anonymous_id="dist-anon", traits={"firstName": "Dirk"})
        rud.page(anonymous_id="dist-anon", properties={"url": "https://leadrelay.example/pricing"})
        assert errors == []
        score = c.wait_for("scoring", f"/v1/leads/{lead}/score", status="lead", engagement=39)
        got = reasons(score)
        assert got["viewed pricing (x3)"] == 30 and got["any page view (x4)"] == 4, got
        assert got["viewed case studies or services (x1)"] == 5, got
        seg.track(user_id=email, event="Demo Requested")
        assignment = c.wait_for("routing", f"/v1/leads/{lead}/assignment")
        assert assignment["handoff"]["qualification"] == "handraiser"
        assert errors == []
