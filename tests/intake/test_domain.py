"""intake.domain: turning what a web form posts into a canonical contact, a form's rules together, and
what a behaviour event must name (pure, no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from intake.domain import (
    CLOCK_SKEW,
    MAX_CUSTOM,
    MAX_VALUE,
    activity_lead,
    field_key,
    form_visitors,
    lead_id_for,
    missing,
    normalise_email,
    normalise_submission,
    posted_page,
    read_form_post,
)
from leadrelay.rules import Consent, Form, FormField, Labels

NAMESPACE = uuid.UUID("6f1c1f7e-2b0a-4e55-9d7c-0a4c6b1e9d21")


def submission(**fields: Any) -> dict[str, Any]:
    """A form post with a valid email unless the test gives its own (or removes it with email=None)."""
    out: dict[str, Any] = {"email": "jan.devries@voorbeeld.nl"}
    out.update(fields)
    return {k: v for k, v in out.items() if not (k == "email" and v is None)}


def ok(fields: dict[str, Any]):  # type: ignore[no-untyped-def]
    result = normalise_submission(fields)
    assert result.errors == [], result.errors
    assert result.contact is not None
    return result


def errors_by_field(fields: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    result = normalise_submission(fields)
    assert result.contact is None, "expected the submission to be rejected"
    out: dict[str, list[dict[str, Any]]] = {}
    for err in result.errors:
        assert err["loc"][0] == "body"
        out.setdefault(err["loc"][1], []).append(err)
    return out


# ------------------------------------------------------------ canonical fields and aliases


def test_canonical_fields_of_a_swedish_contact() -> None:
    result = ok(
        {
            "email": "asa.oberg@nordvik.se",
            "first_name": "Åsa",
            "last_name": "Öberg",
            "company": "Nordvik Logistics AB",
            "job_title": "VD",
            "phone": "+46 70 123 45 67",
            "country": "SE",
            "company_size": "250",
            "industry": "logistics",
            "website": "https://www.nordvik.se/om-oss",
        }
    )
    c = result.contact
    assert (c.first_name, c.last_name, c.full_name) == ("Åsa", "Öberg", "Åsa Öberg")
    assert c.company == "Nordvik Logistics AB"
    assert c.job_title == "VD"
    assert c.phone == "+46701234567"
    assert c.country == "SE"
    assert c.company_size == 250
    assert c.industry == "logistics"
    assert c.website == "nordvik.se"
    assert result.custom == {}


@pytest.mark.parametrize(
    ("alias", "field", "raw", "expected"),
    [
        ("firstname", "first_name", "Jürgen", "Jürgen"),
        ("given_name", "first_name", "Jan", "Jan"),
        ("First Name", "first_name", "Åsa", "Åsa"),
        ("lastname", "last_name", "Groß", "Groß"),
        ("surname", "last_name", "de Vries", "de Vries"),
        ("family_name", "last_name", "王", "王"),
        ("organisation", "company", "Hanse Maschinenbau GmbH", "Hanse Maschinenbau GmbH"),
        ("organization", "company", "Acme Ltd", "Acme Ltd"),
        ("Company Name", "company", "Nordvik Logistics AB", "Nordvik Logistics AB"),
        ("title", "job_title", "Geschäftsführer", "Geschäftsführer"),
        ("Job-Title", "job_title", "总监", "总监"),
        ("employees", "company_size", "120", 120),
        ("number_of_employees", "company_size", "51-200", 51),
        ("telephone", "phone", "+31 20 123 4567", "+31201234567"),
        ("mobile", "phone", "+49 151 23456789", "+4915123456789"),
        ("url", "website", "https://www.voorbeeld.nl", "voorbeeld.nl"),
        ("company_website", "website", "hanse-maschinen.de", "hanse-maschinen.de"),
    ],
)
def test_aliases_map_to_canonical_fields(alias: str, field: str, raw: str, expected: Any) -> None:
    result = ok(submission(**{alias: raw}))
    assert getattr(result.contact, field) == expected
    assert alias not in result.custom


@pytest.mark.parametrize("alias", ["e_mail", "E-Mail", "email_address", "Email Address"])
def test_email_aliases(alias: str) -> None:
    result = ok({alias: "Juergen.Gross@Beispiel.DE"})
    assert result.contact.email == "juergen.gross@beispiel.de"


def test_values_are_trimmed_and_empty_values_dropped() -> None:
    result = ok(submission(first_name="  Jan  ", last_name="", company="   ", utm_campaign=""))
    assert result.contact.first_name == "Jan"
    assert result.contact.last_name is None
    assert result.contact.company is None
    assert "utm_campaign" not in result.custom


def test_page_url_is_kept_apart_from_contact_and_custom() -> None:
    result = ok(submission(page_url="https://leadrelay.example/pricing"))
    assert result.page_url == "https://leadrelay.example/pricing"
    assert "page_url" not in result.custom
    assert ok(submission(Page="https://leadrelay.example/demo")).page_url == "https://leadrelay.example/demo"


# ------------------------------------------------------------ email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Jan.deVries@Voorbeeld.NL ", "jan.devries@voorbeeld.nl"),
        ("ÅSA.ÖBERG@EXEMPEL.SE", "åsa.öberg@exempel.se"),
        ("A\u030asa@exempel.se", "åsa@exempel.se"),  # decomposed Å is composed (NFC)
        ("Jürgen.Groß@Beispiel.de", "jürgen.groß@beispiel.de"),
        ("wang.fang@例子.中国", "wang.fang@例子.中国"),
        ("王芳@例子.中国", "王芳@例子.中国"),
        ("John.Smith@Example.co.uk", "john.smith@example.co.uk"),
    ],
)
def test_email_is_normalised(raw: str, expected: str) -> None:
    assert normalise_email(raw.strip()) == expected
    assert ok({"email": raw}).contact.email == expected


@pytest.mark.parametrize(
    "raw",
    [
        "jan.devries",  # no @
        "jan@voorbeeld",  # no dot in the domain
        "jan@@voorbeeld.nl",
        "jan de vries@voorbeeld.nl",
        "Jan de Vries <jan@voorbeeld.nl>",
        "@voorbeeld.nl",
        "jan@",
    ],
)
def test_bad_emails_are_rejected_on_the_email_field(raw: str) -> None:
    errors = errors_by_field({"email": raw})
    assert list(errors) == ["email"]
    assert errors["email"][0]["type"] == "value_error"
    assert errors["email"][0]["msg"]


def test_missing_email() -> None:
    errors = errors_by_field({"first_name": "Åsa", "last_name": "Öberg"})
    assert errors == {"email": [{"loc": ["body", "email"], "msg": "field required", "type": "missing"}]}


def test_blank_email_counts_as_missing() -> None:
    errors = errors_by_field({"email": "   "})
    assert errors["email"][0]["type"] == "missing"


@pytest.mark.parametrize("bad", ["x" * (MAX_VALUE + 1), ["jan@voorbeeld.nl"]])
def test_rejected_email_is_not_also_reported_missing(bad: Any) -> None:
    errors = errors_by_field({"email": bad})
    assert [e["type"] for e in errors["email"]] == ["value_error" if isinstance(bad, str) else "type_error"]


# ------------------------------------------------------------ country


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("SE", "SE"),
        ("se", "SE"),
        ("NL", "NL"),
        ("NLD", "NL"),
        ("deu", "DE"),
        ("CHN", "CN"),
        ("Sweden", "SE"),
        ("Netherlands", "NL"),
        ("Germany", "DE"),
        ("China", "CN"),
        ("United Kingdom", "GB"),
        (" Norway ", "NO"),
    ],
)
def test_country_by_code_or_english_name(raw: str, expected: str) -> None:
    assert ok(submission(country=raw)).contact.country == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Sverige", "SE"), ("Deutschland", "DE"), ("schweden", "SE"), ("Nederland", "NL"), ("中国", "CN"), ("瑞典", "SE")],
)
def test_country_in_the_languages_the_forms_speak(raw: str, expected: str) -> None:
    """The snippet asks for the country in Swedish, German, Dutch or Chinese: the answer is taken."""
    assert ok(submission(country=raw)).contact.country == expected


@pytest.mark.parametrize("raw", ["Narnia", "XX", "Germania"])
def test_unknown_country(raw: str) -> None:
    errors = errors_by_field(submission(country=raw))
    assert list(errors) == ["country"]
    assert raw in errors["country"][0]["msg"]
    assert "unknown country" in errors["country"][0]["msg"]


# ------------------------------------------------------------ phone


@pytest.mark.parametrize(
    ("phone", "country", "expected"),
    [
        ("070-123 45 67", "SE", "+46701234567"),
        ("08-123 456 78", "Sweden", "+46812345678"),
        ("020 123 4567", "NL", "+31201234567"),
        ("030 1234567", "DE", "+49301234567"),
        ("138 1234 5678", "CN", "+8613812345678"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+46 70 123 45 67", "DE", "+46701234567"),  # an international number keeps its own country
    ],
)
def test_national_phone_with_a_country_becomes_e164(phone: str, country: str, expected: str) -> None:
    assert ok(submission(phone=phone, country=country)).contact.phone == expected


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        ("+46 70 123 45 67", "+46701234567"),
        ("+31 (0)20 123 4567", "+31201234567"),
        ("+49 30 1234567", "+49301234567"),
        ("+86 138 1234 5678", "+8613812345678"),
        ("0046 70 123 45 67", None),  # 00-prefix is not international format without a country
    ],
)
def test_phone_without_a_country(phone: str, expected: str | None) -> None:
    result = normalise_submission(submission(phone=phone))
    if expected is None:
        assert result.contact is None
        assert [e["loc"] for e in result.errors] == [["body", "phone"]]
    else:
        assert result.errors == []
        assert result.contact is not None
        assert result.contact.phone == expected
        assert result.contact.country is None


def test_national_phone_without_a_country_asks_for_international_format() -> None:
    errors = errors_by_field(submission(phone="070-123 45 67"))
    assert list(errors) == ["phone"]
    assert "international format" in errors["phone"][0]["msg"]


@pytest.mark.parametrize("phone", ["12", "070", "+46 1", "+1 555 0000 00000 000"])
def test_invalid_phone_with_a_country(phone: str) -> None:
    errors = errors_by_field(submission(phone=phone, country="SE"))
    assert list(errors) == ["phone"]
    assert "international format" not in errors["phone"][0]["msg"]  # the hint is only for a missing country


def test_phone_that_is_not_a_number_at_all() -> None:
    errors = errors_by_field(submission(phone="call me maybe", country="NL"))
    assert list(errors) == ["phone"]


# ------------------------------------------------------------ company size


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("250", 250),
        (" 250 ", 250),
        (250, 250),
        ("51-200", 51),
        ("51 - 200", 51),
        ("51–200", 51),  # en dash
        ("1000+", 1000),
        ("1,000", 1000),
        ("1.000", 1000),
        ("10 000", 10000),
        ("5,000-10,000", 5000),
    ],
)
def test_company_size_forms(raw: Any, expected: int) -> None:
    assert ok(submission(company_size=raw)).contact.company_size == expected


@pytest.mark.parametrize("raw", ["lots", "about 50", "-5", "50-", "+", "fifty", "1000++"])
def test_bad_company_size(raw: str) -> None:
    errors = errors_by_field(submission(company_size=raw))
    assert list(errors) == ["company_size"]
    assert "number of employees" in errors["company_size"][0]["msg"]


def test_company_size_as_a_float_number() -> None:
    assert ok(submission(employees=250.0)).contact.company_size == 250


# ------------------------------------------------------------ website


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("nordvik.se", "nordvik.se"),
        ("www.nordvik.se", "nordvik.se"),
        ("WWW.Beispiel.DE", "beispiel.de"),
        ("https://www.voorbeeld.nl/over-ons?x=1", "voorbeeld.nl"),
        ("http://shop.hanse-maschinen.de:8080/katalog", "shop.hanse-maschinen.de"),
        ("https://例子.中国/", "例子.中国"),
    ],
)
def test_website_becomes_a_domain(raw: str, expected: str) -> None:
    assert ok(submission(website=raw)).contact.website == expected


@pytest.mark.parametrize("raw", ["localhost", "https://", "not a website"])
def test_bad_website(raw: str) -> None:
    errors = errors_by_field(submission(website=raw))
    assert list(errors) == ["website"]


# ------------------------------------------------------------ custom attributes and limits


def test_unknown_fields_are_kept_as_custom_attributes() -> None:
    result = ok(
        submission(
            utm_source="linkedin",
            **{"Budget (EUR)": "50000", "Wie heeft u doorverwezen?": "Pieter", "预算": "十万"},
            employee_count_next_year=300,
        )
    )
    assert result.custom == {
        "utm_source": "linkedin",
        "Budget (EUR)": "50000",
        "Wie heeft u doorverwezen?": "Pieter",
        "预算": "十万",
        "employee_count_next_year": "300",
    }
    assert result.contact.company_size is None


def test_value_at_the_limit_is_kept_and_one_over_is_rejected() -> None:
    assert ok(submission(notes="ä" * MAX_VALUE)).custom["notes"] == "ä" * MAX_VALUE
    errors = errors_by_field(submission(notes="ä" * (MAX_VALUE + 1), last_name="x" * (MAX_VALUE + 1)))
    assert set(errors) == {"notes", "last_name"}
    assert all(str(MAX_VALUE) in e[0]["msg"] for e in errors.values())


@pytest.mark.parametrize("value", [["a", "b"], {"nested": "x"}, True, False])
def test_non_string_values_are_rejected(value: Any) -> None:
    errors = errors_by_field(submission(interests=value))
    assert list(errors) == ["interests"]
    assert errors["interests"][0]["type"] == "type_error"


def test_null_values_are_empty_fields() -> None:
    result = ok(submission(interests=None, company=None))
    assert result.custom == {}
    assert result.contact is not None and result.contact.company is None


def test_numbers_are_accepted_as_strings() -> None:
    result = ok(submission(budget=50000, rating=4.5))
    assert result.custom == {"budget": "50000", "rating": "4.5"}


def test_too_many_custom_fields() -> None:
    at_limit = submission(**{f"extra_{i}": "v" for i in range(MAX_CUSTOM)})
    assert len(ok(at_limit).custom) == MAX_CUSTOM
    over = submission(**{f"extra_{i}": "v" for i in range(MAX_CUSTOM + 1)})
    errors = errors_by_field(over)
    assert list(errors) == ["(custom)"]
    assert str(MAX_CUSTOM) in errors["(custom)"][0]["msg"]


def test_all_errors_are_reported_at_once_with_their_loc() -> None:
    result = normalise_submission(
        {
            "first_name": "Jürgen",
            "last_name": "Groß",
            "country": "Narnia",
            "phone": "12",
            "employees": "lots",
            "website": "localhost",
            "tags": ["a"],
            "notes": "x" * (MAX_VALUE + 1),
        }
    )
    assert result.contact is None
    assert result.custom == {}
    locs = sorted(tuple(e["loc"]) for e in result.errors)
    assert locs == sorted(
        [
            ("body", "email"),
            ("body", "country"),
            ("body", "phone"),
            ("body", "company_size"),
            ("body", "website"),
            ("body", "tags"),
            ("body", "notes"),
        ]
    )
    assert all(set(e) == {"loc", "msg", "type"} and e["msg"] for e in result.errors)


# ------------------------------------------------------------ lead ids


def test_lead_id_is_stable_and_a_uuid5() -> None:
    a = lead_id_for("jan.devries@voorbeeld.nl", NAMESPACE)
    assert a == lead_id_for("jan.devries@voorbeeld.nl", NAMESPACE)
    assert uuid.UUID(a).version == 5
    assert a != lead_id_for("pieter.janssens@voorbeeld.be", NAMESPACE)
    assert a != lead_id_for("jan.devries@voorbeeld.nl", uuid.UUID(int=1))


@pytest.mark.parametrize(
    "variants",
    [
        ["jan.devries@voorbeeld.nl", "Jan.deVries@Voorbeeld.NL", "  JAN.DEVRIES@VOORBEELD.NL "],
        ["åsa.öberg@exempel.se", "Åsa.Öberg@Exempel.se", "A\u030asa.O\u0308berg@exempel.se"],
        ["wang.fang@例子.中国", "Wang.Fang@例子.中国"],
    ],
)
def test_lead_id_is_case_insensitive_after_normalisation(variants: list[str]) -> None:
    ids = {lead_id_for(normalise_email(v.strip()), NAMESPACE) for v in variants}
    assert len(ids) == 1
    via_form = {lead_id_for(ok({"email": v}).contact.email, NAMESPACE) for v in variants}
    assert via_form == ids


def test_form_visitor_fields() -> None:
    fields = {"email": "a@b.se", "HUTK": "h-1", "anonymous-id": "a-1", "note": "x"}
    visitors, rest, errors = form_visitors(fields, ["anonymous_id", "hutk"])
    assert [v.id for v in visitors] == ["h-1", "a-1"] and rest == {"email": "a@b.se", "note": "x"} and errors == []
    _, _, errors = form_visitors({"hutk": "x" * 201}, ["hutk"])
    assert errors[0]["loc"] == ["body", "hutk"]
    # analytics.js's cookie holds the id as a JSON string; its calls send it bare: the same visitor.
    for stored in ('"a-1"', "%22a-1%22"):
        visitors, _, _ = form_visitors({"ajs_anonymous_id": stored}, ["ajs_anonymous_id"])
        assert [v.id for v in visitors] == ["a-1"]
    visitors, _, _ = form_visitors({"ajs_anonymous_id": '""'}, ["ajs_anonymous_id"])
    assert visitors == []


FORM = Form(
    id="demo",
    name="Demo",
    fields=[FormField(name="email", required=True), FormField(name="company", required=True), FormField(name="phone")],
    consent=Consent(field="consent", text=Labels(en="I agree", sv="Jag godkänner"), required=True),
)


def test_field_keys_and_the_posted_page() -> None:
    assert field_key(" Email Address ") == "email" and field_key("Company.Name") == "company"
    assert field_key("favourite colour") == "favourite_colour"
    assert posted_page({"email": "a@b.se", "Page-URL": "https://x.example/p"}) == "https://x.example/p"
    assert posted_page({"referrer_page": "https://x.example/q"}) == "https://x.example/q"
    assert posted_page({"email": "a@b.se"}) is None


def test_missing_names_the_required_fields_the_post_lacks_but_not_email() -> None:
    # email is the normaliser's own; a blank value is missing; an alias counts as the field.
    assert missing(FORM, {}) == [{"loc": ["body", "company"], "msg": "field required", "type": "missing"}]
    assert missing(FORM, {"company": "   "})[0]["loc"] == ["body", "company"]
    assert missing(FORM, {"Company_Name": "Nordvik AB"}) == []


def test_a_form_post_under_every_rule_reports_all_its_errors_at_once() -> None:
    post = read_form_post(FORM, {"email": "not an address", "hutk": "x" * 201}, ["hutk"], consented_elsewhere=False)
    assert post.normalised.contact is None
    # normalisation first, then the visitor fields, the required fields, the consent box
    assert [e["loc"][1] for e in post.errors] == ["email", "hutk", "company", "consent"]
    assert post.consent_language is None and post.visitors == []


def test_a_good_form_post_gives_its_contact_visitors_and_consent_language() -> None:
    fields = {"email": "Asa@Nordvik-Test.se", "company": "Nordvik", "consent": "yes", "consent_language": "sv"}
    post = read_form_post(FORM, {**fields, "anonymous_id": "a-1"}, ["anonymous_id"], consented_elsewhere=False)
    assert post.errors == []
    assert post.normalised.contact is not None and post.normalised.contact.email == "asa@nordvik-test.se"
    assert [v.id for v in post.visitors] == ["a-1"] and post.consent_language == "sv"
    assert "anonymous_id" not in post.normalised.custom and "consent" not in post.normalised.custom
    assert fields["consent"] == "yes"  # the caller's fields are left as they were
    # consent given elsewhere (HubSpot's options): the box is not required
    post = read_form_post(FORM, {"email": "a@nordvik-test.se", "company": "N"}, [], consented_elsewhere=True)
    assert post.errors == [] and post.consent_language is None


def test_a_behaviour_event_names_its_lead_and_is_not_in_the_future() -> None:
    now = datetime(2025, 3, 1, 12, tzinfo=UTC)
    email = "asa@nordvik-test.se"
    lead = lead_id_for(email, NAMESPACE)
    assert activity_lead(email, None, None, now, NAMESPACE) == (lead, [])
    assert activity_lead(email, uuid.UUID(lead), now + CLOCK_SKEW, now, NAMESPACE) == (lead, [])
    other = uuid.uuid4()
    assert activity_lead(None, other, None, now, NAMESPACE) == (str(other), [])

    def error(*args: Any) -> Any:
        derived, errors = activity_lead(*args, now, NAMESPACE)
        assert derived is None and len(errors) == 1
        return errors[0]["loc"][1], errors[0]["msg"]

    assert error(email, None, now + CLOCK_SKEW + timedelta(seconds=1)) == ("occurred_at", "in the future")
    assert error(email, other, None) == ("lead_id", "does not belong to this email")
    assert error(None, None, None) == ("email", "give the lead's email or lead_id")
