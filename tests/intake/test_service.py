"""intake.service: the use cases the HTTP routes and the benchmark share (no bus needed to build)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from intake.domain import lead_id_for
from intake.service import Intake, Invalid, NotStored, UnknownForm
from leadrelay.bus.memory import MemoryBus
from leadrelay.clock import FrozenClock
from leadrelay.events import ActivityRecorded, ActivityType, FormSubmitted
from tests.harness import example_rules

NS = uuid.UUID("6f1b6d0e-6c1e-4d8e-9a55-3b7f2c9d0a11")
ANNA = {"email": " Anna.Berg@Nordvik.se ", "first_name": "Anna", "country": "Sweden"}


def intake(bus: MemoryBus | None = None) -> Intake:
    return Intake(example_rules(), NS, FrozenClock(), bus)


def test_a_form_becomes_a_form_submitted_event_keyed_by_the_normalised_address() -> None:
    env = intake().form_submission("demo-request", ANNA)
    assert isinstance(env.data, FormSubmitted)
    assert env.subject == lead_id_for("anna.berg@nordvik.se", NS)
    assert env.data.contact.country == "SE"
    assert env.source == "/leadrelay/intake"


def test_a_client_key_gives_a_stable_event_id_and_none_a_fresh_one() -> None:
    i = intake()
    assert i.form_submission("demo-request", ANNA, "k1").id == i.form_submission("demo-request", ANNA, "k1").id
    assert i.form_submission("demo-request", ANNA, "k1").id != i.form_submission("newsletter", ANNA, "k1").id
    assert i.form_submission("demo-request", ANNA).id != i.form_submission("demo-request", ANNA).id


def test_unknown_forms_and_bad_fields_are_refused() -> None:
    with pytest.raises(UnknownForm, match="known forms: demo-request"):
        intake().form_submission("no-such-form", ANNA)
    with pytest.raises(Invalid) as bad:
        intake().form_submission("demo-request", {"email": "not an address"})
    assert bad.value.errors[0]["loc"] == ["body", "email"]


def test_an_activity_needs_a_lead_and_a_plausible_time() -> None:
    i = intake()
    env = i.activity(
        ActivityType.PAGE_VIEWED,
        email="anna.berg@nordvik.se",
        lead_id=None,
        occurred_at=None,
        url="/pricing",
        properties={},
    )
    assert isinstance(env.data, ActivityRecorded) and env.subject == lead_id_for("anna.berg@nordvik.se", NS)
    with pytest.raises(Invalid, match="give the lead"):
        i.activity(ActivityType.PAGE_VIEWED, email=None, lead_id=None, occurred_at=None, url=None, properties={})
    with pytest.raises(Invalid, match="does not belong"):
        i.activity(
            ActivityType.PAGE_VIEWED,
            email="anna.berg@nordvik.se",
            lead_id=uuid.uuid4(),
            occurred_at=None,
            url=None,
            properties={},
        )
    future = i.clock.now() + timedelta(minutes=6)
    with pytest.raises(Invalid, match="future"):
        i.activity(
            ActivityType.PAGE_VIEWED, email=None, lead_id=uuid.uuid4(), occurred_at=future, url=None, properties={}
        )


async def test_accept_returns_once_published_and_says_when_it_was_not_stored() -> None:
    bus = MemoryBus()
    i = intake(bus)
    env = i.form_submission("demo-request", ANNA)
    accepted = await i.accept(env)
    assert (accepted.lead_id, accepted.event_id) == (env.subject, env.id)
    assert [r.header("ce_id") for r in bus.records("leads.intake")] == [env.id]

    class DownBus(MemoryBus):
        async def publish(self, records: object) -> None:  # type: ignore[override]
            raise ConnectionError("broker down")

    with pytest.raises(NotStored):
        await intake(DownBus()).accept(env)
