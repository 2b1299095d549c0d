"""The join and a visitor's activity handled at the same moment by two consumers (as when the
visitor's partition and the lead's are with different replicas), on SQLite and on PostgreSQL:
every activity is credited to the lead once, whichever transaction takes the visitor row first."""

from __future__ import annotations

import asyncio
import uuid

from intake.connectors.segment import visitor_key
from intake.domain import lead_id_for
from leadrelay.events import (
    ActivityType,
    Contact,
    Envelope,
    Event,
    LeadIdentified,
    Visitor,
    VisitorActivityRecorded,
)
from leadrelay.settings import Settings
from tests.harness import running

VIEWS = 3


async def test_a_join_racing_the_visitors_page_views_counts_each_once(settings: Settings) -> None:
    namespace = uuid.UUID(settings.lead_id_namespace)
    async with running(settings, services=["scoring"]) as h:
        (ctx,) = [c for c in h.runtime.contexts if c.name == "scoring"]
        (worker,) = ctx.workers
        for i in range(12):
            visitor = Visitor(kind="anonymous", id=f"race-{i}")
            email = f"rasmus{i}@race-test.se"
            lead = lead_id_for(email, namespace)
            events: list[Event] = [
                VisitorActivityRecorded(
                    lead_id=visitor_key(visitor, namespace),
                    visitor=visitor,
                    activity=ActivityType.PAGE_VIEWED,
                    occurred_at=h.clock.now(),
                    url=f"https://leadrelay.example/page-{j}",
                )
                for j in range(VIEWS)
            ]
            # The join lands first, last or in between: one batch per event, all at once.
            position = i % (VIEWS + 1)
            join = LeadIdentified(
                lead_id=lead, contact=Contact(email=email), visitors=[visitor], identified_at=h.clock.now()
            )
            events.insert(position, join)
            envelopes = [Envelope.new(e, source="/leadrelay/intake", time=h.clock.now()) for e in events]
            await asyncio.gather(*(worker._handle([(env.to_record(), env)]) for env in envelopes))
            body = (await h.client.get(f"/v1/leads/{lead}/score")).json()
            engagement = {r["rule"]: r["points"] for r in body["reasons"] if r["category"] == "engagement"}
            assert engagement == {f"any page view (x{VIEWS})": VIEWS}, (i, body)
            # Replayed (the inbox drops them): still once.
            await asyncio.gather(*(worker._handle([(env.to_record(), env)]) for env in envelopes))
            again = (await h.client.get(f"/v1/leads/{lead}/score")).json()
            assert again["engagement"] == VIEWS
