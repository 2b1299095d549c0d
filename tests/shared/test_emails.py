"""leadrelay.emails: the clean-data facts and the folding of addresses (pure, offline)."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from intake.domain import lead_id_for, normalise_submission
from leadrelay.emails import company_domain, email_type, facts, fold_email, registrable_domain
from leadrelay.events import Contact, LeadStatus, Qualification
from leadrelay.rules import load_rules
from scoring.domain import decide, evaluate, profile_fields

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
NS = uuid.UUID("6f1b7c1e-7d3a-4c0e-9c7e-1a2b3c4d5e6f")


@pytest.mark.parametrize(
    ("email", "kind"),
    [
        ("jane@acme.com", "business"),
        ("jane.doe@sub.acme.co.uk", "business"),
        ("jane@gmail.com", "free"),
        ("jane@GoogleMail.com", "free"),
        ("jane@yahoo.com", "free"),
        ("jane@hotmail.com", "free"),
        ("jane@mailinator.com", "disposable"),
        ("jane@10minutemail.com", "disposable"),
        ("info@acme.com", "role"),
        ("Sales@acme.com", "role"),
        ("support+eu@acme.com", "role"),
        ("info@gmail.com", "free"),  # a free-mail box is free mail, whatever its name
    ],
)
def test_email_type(email: str, kind: str) -> None:
    assert email_type(email) == kind


@pytest.mark.parametrize(
    ("email", "website", "domain"),
    [
        ("jane@mail.acme.co.uk", None, "acme.co.uk"),
        ("info@acme.com", None, "acme.com"),
        ("jane@gmail.com", "https://www.shop.acme.de/about", "acme.de"),
        ("jane@gmail.com", None, None),
        ("jane@gmail.com", "yahoo.com", None),  # a free-mail site is no company
        ("jane@mailinator.com", "acme.se", "acme.se"),
        ("jane@acme.com", "other.example.org", "acme.com"),  # the address wins over the website
    ],
)
def test_company_domain(email: str, website: str | None, domain: str | None) -> None:
    assert company_domain(email, website) == domain


def test_the_bundled_suffix_list_is_used_and_nothing_is_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("tldextract tried the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert registrable_domain("a.b.example.co.uk") == "example.co.uk"
    assert registrable_domain("shop.acme.com.au") == "acme.com.au"
    assert registrable_domain("co.uk") is None


@pytest.mark.parametrize(
    ("typed", "folded"),
    [
        ("Jane.Doe+ads@googlemail.com", "janedoe@gmail.com"),
        ("j.a.n.e.doe@gmail.com", "janedoe@gmail.com"),
        ("jane+news@outlook.com", "jane@outlook.com"),
        ("jane+x@icloud.com", "jane@icloud.com"),
        ("jane.doe+x@acme.com", "jane.doe+x@acme.com"),  # a company's server: we cannot know, keep it
        ("jane.doe@yahoo.com", "jane.doe@yahoo.com"),  # Yahoo keeps its dots
    ],
)
def test_fold_email(typed: str, folded: str) -> None:
    assert fold_email(typed) == folded


def test_one_person_stays_one_lead_and_keeps_the_address_typed() -> None:
    a = normalise_submission({"email": "Jane.Doe+webinar@googlemail.com"})
    b = normalise_submission({"email": "janedoe@gmail.com"})
    assert a.contact is not None and b.contact is not None
    assert lead_id_for(a.contact.email, NS) == lead_id_for(b.contact.email, NS)
    assert a.contact.email == "jane.doe+webinar@googlemail.com"
    assert lead_id_for("jane@acme.com", NS) != lead_id_for("jane+x@acme.com", NS)


def test_intake_puts_the_facts_on_the_contact() -> None:
    n = normalise_submission({"email": "jane@gmail.com", "website": "acme.de"})
    assert n.contact is not None
    assert (n.contact.email_type, n.contact.company_domain) == ("free", "acme.de")
    assert facts("ops@acme.com") == {"email_type": "role", "company_domain": "acme.com"}


def _example(contact: Contact, handraiser: bool) -> tuple[LeadStatus, Qualification | None, int, str | None]:
    defn = load_rules(EXAMPLE).lead_definition
    ev = evaluate(defn, profile_fields(contact, {}), {}, handraiser)
    status, q = decide(LeadStatus.LEAD, ev, defn.threshold, ev.handraiser, reachable=True)
    return status, q, ev.fit, ev.disqualified_by


def test_example_rules_free_mail_contact_sales_is_not_handed_over_at_once() -> None:
    company = {"company": "Acme", "company_size": 300, "industry": "software", "job_title": "CTO"}
    status, q, fit, _ = _example(Contact(email="jane@acme.com", **company), handraiser=True)
    assert (status, q, fit) == (LeadStatus.HANDRAISER, Qualification.HANDRAISER, 55)
    # The same person from gmail.com: no company fit, and the handraise waits for the score.
    status, q, fit, _ = _example(Contact(email="jane@gmail.com", **company), handraiser=True)
    assert (status, q, fit) == (LeadStatus.LEAD, None, 25)
    # A role address is still a company's.
    status, q, _, _ = _example(Contact(email="info@acme.com", **company), handraiser=True)
    assert q is Qualification.HANDRAISER


def test_example_rules_disqualify_a_disposable_address() -> None:
    status, q, _, dq = _example(Contact(email="jane@mailinator.com", job_title="CEO"), handraiser=True)
    assert (status, q, dq) == (LeadStatus.DISQUALIFIED, None, "disposable address")
