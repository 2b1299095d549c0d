"""A form's rules: normalising what a form posts into a canonical contact, its consent box, its
visitor id fields, the fields the rules file requires, and what makes a behaviour event acceptable.

Pure functions: every problem is reported as a field error (location, message),
all of them at once, so the form can show them next to the fields.
"""

from __future__ import annotations

import functools
import gettext
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email

from leadrelay.emails import facts, fold_email
from leadrelay.events import MAX_VISITORS, Contact, Visitor
from leadrelay.inputs import InvalidText, clean_text, displayable
from leadrelay.rules import CONSENT_LANGUAGES, Consent, Form, country_code

CANONICAL = (
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "phone",
    "country",
    "company_size",
    "industry",
    "website",
)
# Names that common form builders and CRMs use for the canonical fields.
ALIASES = {
    "e_mail": "email",
    "email_address": "email",
    "firstname": "first_name",
    "given_name": "first_name",
    "lastname": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "company_name": "company",
    "organisation": "company",
    "organization": "company",
    "title": "job_title",
    "jobtitle": "job_title",
    "phone_number": "phone",
    "telephone": "phone",
    "mobile": "phone",
    "employees": "company_size",
    "number_of_employees": "company_size",
    "url": "website",
    "company_website": "website",
}
PAGE_KEYS = ("page_url", "page", "referrer_page")
MAX_CUSTOM = 50
MAX_VALUE = 1000
MAX_NAME = 100
_SIZE = re.compile(r"^\s*(\d[\d\s,.]*)\s*(?:[-–]\s*\d[\d\s,.]*|\+)?\s*$")


# Country names in the languages the website's forms speak (pycountry's own translations, installed
# with it), so a visitor may type "Sverige", "Deutschland" or "中国" where the form says "Land".
_COUNTRY_LOCALES = ("sv", "de", "nl", "zh_CN", "zh_TW")


@functools.cache
def _local_country_names() -> dict[str, str]:
    """Translated name (casefolded) -> alpha-2; a name two countries share is left out."""
    found: dict[str, set[str]] = {}
    for locale in _COUNTRY_LOCALES:
        try:
            t = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[locale])
        except OSError:
            continue
        for c in pycountry.countries:
            for attr in ("name", "common_name", "official_name"):
                english = getattr(c, attr, None)
                if english:
                    found.setdefault(t.gettext(english).casefold(), set()).add(c.alpha_2)
    return {name: next(iter(codes)) for name, codes in found.items() if len(codes) == 1}


def form_country(value: str) -> str:
    """ISO 3166-1 alpha-2 for a code, an English name, or a name in Swedish, German, Dutch or Chinese."""
    try:
        return country_code(value)
    except ValueError:
        code = _local_country_names().get(value.strip().casefold())
        if code is None:
            raise
        return code


@dataclass
class Normalised:
    contact: Contact | None
    custom: dict[str, str] = field(default_factory=dict)
    page_url: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


def field_key(name: str) -> str:
    """The canonical name of a form field: lower case, separators as ``_``, aliases resolved."""
    k = re.sub(r"[\s\-.]+", "_", name.strip().lower())
    return ALIASES.get(k, k)


def _err(loc: str, msg: str, type_: str = "value_error") -> dict[str, Any]:
    return {"loc": ["body", loc], "msg": msg, "type": type_}


def normalise_email(raw: str) -> str:
    """Normalised address, or EmailNotValidError. Deliverability (DNS) is not checked: intake must not block."""
    return validate_email(raw.strip(), check_deliverability=False).normalized.lower()


def lead_id_for(email: str, namespace: uuid.UUID) -> str:
    """The stable lead id of an address: the same person always gets the same id, with no lookup.

    Derived from the folded address (``leadrelay.emails.fold_email``: Gmail's dots and ``+tags``,
    googlemail.com, other providers' ``+tags``), so ``Jane.Doe+ads@googlemail.com`` and
    ``janedoe@gmail.com`` are one lead; the contact keeps the address as typed.
    """
    return str(uuid.uuid5(namespace, fold_email(email)))


def _company_size(value: str) -> int:
    m = _SIZE.match(value)
    if not m:
        raise ValueError("expected a number of employees, e.g. 250, 51-200 or 1000+")
    return int(re.sub(r"[\s,.]", "", m.group(1)))


def _domain(value: str) -> str:
    v = value.strip()
    if "://" not in v:
        v = "http://" + v
    host = (urlsplit(v).hostname or "").lower()
    if not host or "." not in host:
        raise ValueError("expected a web address, e.g. example.com")
    return host.removeprefix("www.")


def normalise_submission(fields: dict[str, Any]) -> Normalised:
    values: dict[str, str] = {}
    custom: dict[str, str] = {}
    errors: list[dict[str, Any]] = []
    page_url: str | None = None
    rejected: set[str] = set()
    for name, raw in fields.items():
        # Names and values are under the input policy (leadrelay.inputs), custom ones included:
        # NUL and unpaired surrogates are refused, other control characters removed, text NFC.
        try:
            label = clean_text(str(name))
        except InvalidText as exc:
            errors.append(_err(displayable(str(name)), f"field name {exc}"))
            continue
        key = field_key(label)
        if raw is None:
            continue  # an empty field, as many form builders send it
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            errors.append(_err(label, "expected a string or a number", "type_error"))
            rejected.add(key)
            continue
        # 250.0 from a JSON client is 250 employees, not "250.0".
        value = str(int(raw)) if isinstance(raw, float) and raw.is_integer() else str(raw)
        try:
            # Custom fields may come from a text area: they keep their line breaks.
            value = clean_text(value, multiline=key not in CANONICAL and key not in PAGE_KEYS)
        except InvalidText as exc:
            errors.append(_err(label, str(exc)))
            rejected.add(key)
            continue
        if len(value) > MAX_VALUE:  # as sent, surrounding spaces included: the documented maxLength
            errors.append(_err(label, f"longer than {MAX_VALUE} characters"))
            rejected.add(key)
            continue
        value = value.strip()
        if key in PAGE_KEYS:
            page_url = value or None
        elif key in CANONICAL:
            if value:
                values[key] = value
        elif value:
            custom[label.strip()[:MAX_NAME]] = value
    if len(custom) > MAX_CUSTOM:
        errors.append(_err("(custom)", f"at most {MAX_CUSTOM} custom fields"))

    contact: dict[str, Any] = {}
    if "email" not in values:
        if "email" not in rejected:
            errors.append(_err("email", "field required", "missing"))
    else:
        try:
            contact["email"] = normalise_email(values["email"])
        except EmailNotValidError as exc:
            errors.append(_err("email", str(exc)))
    if "country" in values:
        try:
            contact["country"] = form_country(values["country"])
        except ValueError as exc:
            errors.append(_err("country", str(exc)))
    if "phone" in values:
        try:
            number = phonenumbers.parse(values["phone"], contact.get("country"))
            if not phonenumbers.is_valid_number(number):
                raise ValueError("not a valid phone number")
            contact["phone"] = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        except (phonenumbers.NumberParseException, ValueError) as exc:
            hint = "" if "country" in contact else " (give it in international format, +46..., or send a country)"
            errors.append(_err("phone", f"{exc}{hint}"))
    if "company_size" in values:
        try:
            contact["company_size"] = _company_size(values["company_size"])
        except ValueError as exc:
            errors.append(_err("company_size", str(exc)))
    if "website" in values:
        try:
            contact["website"] = _domain(values["website"])
        except ValueError as exc:
            errors.append(_err("website", str(exc)))
    for name in ("first_name", "last_name", "company", "job_title", "industry"):
        if name in values:
            contact[name] = values[name]
    if errors:
        return Normalised(contact=None, errors=errors)
    contact.update(facts(contact["email"], contact.get("website")))
    return Normalised(contact=Contact(**contact), custom=custom, page_url=page_url)


ConsentSource = Literal["form", "hubspot", "web-to-lead", "import"]
TICKED = frozenset({"on", "true", "yes", "1", "checked", "y", "agree", "agreed"})
CONSENT_LANGUAGE_FIELD = "consent_language"


def take_consent(form: Form, fields: dict[str, Any], given_elsewhere: bool) -> tuple[str | None, list[dict[str, Any]]]:
    """Take the form's consent field (and ``consent_language``) out of ``fields``: the language of
    the text the person agreed to when the box was ticked, else None; an error when the form
    requires consent and none was given (here or, ``given_elsewhere``, e.g. HubSpot's options)."""
    language = fields.pop(CONSENT_LANGUAGE_FIELD, None)
    if form.consent is None:
        return None, []
    raw = fields.pop(form.consent.field, None)
    ticked = str(raw).strip().lower() in TICKED if isinstance(raw, str | int | bool) else False
    if not ticked:
        if form.consent.required and not given_elsewhere:
            return None, [_err(form.consent.field, "consent is required: tick the box to agree", "missing")]
        return None, []
    lang = str(language).strip().lower()[:2] if isinstance(language, str) else "en"
    return (lang if lang in CONSENT_LANGUAGES and getattr(form.consent.text, lang, None) else "en"), []


def consent_text(consent: Consent, language: str) -> str:
    return consent.text.get(language)


def missing(form: Form, fields: dict[str, Any]) -> list[dict[str, Any]]:
    """Field errors for the configured required fields the post lacks, as the snippet checks them in
    the browser (a required consent is :func:`take_consent`'s)."""
    given = {field_key(str(k)) for k, v in fields.items() if v is not None and str(v).strip()}
    errors = [
        {"loc": ["body", f.name], "msg": "field required", "type": "missing"}
        for f in form.fields
        if f.required and field_key(f.name) not in given and field_key(f.name) != "email"  # email: the normaliser's own
    ]
    return errors


def posted_page(fields: dict[str, Any]) -> Any:
    """The value of a form's page field (``page_url``, ``page``, ``referrer_page``: the snippet sets it), if any."""
    return next((v for k, v in fields.items() if field_key(str(k)) in PAGE_KEYS), None)


def _cookie_value(text: str) -> str:
    """An id copied from a cookie as it is stored: analytics.js keeps ``ajs_anonymous_id`` as a JSON
    string (``"0a1b..."``, in the cookie ``%220a1b...%22``), while its calls send the bare id."""
    for quote in ('"', "%22"):
        if len(text) >= 2 * len(quote) and text.startswith(quote) and text.endswith(quote):
            return text[len(quote) : -len(quote)].strip()
    return text


def form_visitors(
    fields: dict[str, Any], names: list[str]
) -> tuple[list[Visitor], dict[str, Any], list[dict[str, Any]]]:
    """A form's visitor id fields (the rules' ``tracking.visitor_fields``: ``anonymous_id``, ``hutk``,
    a cookie copied into a hidden field) as visitors, the other fields, and the errors."""
    wanted = set(names)
    visitors: list[Visitor] = []
    rest: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for name, value in fields.items():
        key = re.sub(r"[\s\-.]+", "_", str(name).strip().lower())
        if key not in wanted:
            rest[name] = value
            continue
        if value is None or value == "":
            continue
        if not isinstance(value, str) or isinstance(value, bool):
            errors.append(_err(str(name), "expected a string", "type_error"))
            continue
        try:
            text = clean_text(value).strip()
        except InvalidText as exc:
            errors.append(_err(str(name), str(exc)))
            continue
        text = _cookie_value(text)
        if len(text) > 200:
            errors.append(_err(str(name), "longer than 200 characters"))
        elif text and all(v.id != text for v in visitors):
            visitors.append(Visitor(kind="anonymous", id=text))
    return visitors[:MAX_VISITORS], rest, errors


@dataclass
class FormPost:
    """What a form's fields are once its rules are applied: the normalised contact (None when there
    are ``errors``), the visitors its id fields name, and the language of the consent text agreed to
    (None: no consent box was ticked)."""

    normalised: Normalised
    visitors: list[Visitor]
    consent_language: str | None
    errors: list[dict[str, Any]]


def read_form_post(
    form: Form, fields: dict[str, Any], visitor_fields: list[str], consented_elsewhere: bool
) -> FormPost:
    """A form's fields under every rule of the form, with all their errors at once: the consent box
    (:func:`take_consent`), the visitor id fields (:func:`form_visitors`), the normalised contact
    (:func:`normalise_submission`) and the fields the rules file requires (:func:`missing`)."""
    fields = dict(fields)
    ticked, consent_errors = take_consent(form, fields, consented_elsewhere)
    visitors, fields, visitor_errors = form_visitors(fields, visitor_fields)
    result = normalise_submission(fields)
    errors = result.errors + visitor_errors + missing(form, fields) + consent_errors
    return FormPost(normalised=result, visitors=visitors, consent_language=ticked, errors=errors)


# A tracking client's clock may run a little fast; beyond this an event "in the future" is refused.
CLOCK_SKEW = timedelta(minutes=5)


def activity_lead(
    email: str | None, lead_id: uuid.UUID | None, occurred_at: datetime | None, now: datetime, namespace: uuid.UUID
) -> tuple[str | None, list[dict[str, Any]]]:
    """The lead a behaviour event is about (by its normalised email, or its id), or the error: an
    event in the future (past :data:`CLOCK_SKEW`), a lead id that is not the email's, or neither given."""
    if occurred_at is not None and occurred_at > now + CLOCK_SKEW:
        return None, [_err("occurred_at", "in the future")]
    if email:
        derived = lead_id_for(email, namespace)
        if lead_id is not None and str(lead_id) != derived:
            return None, [_err("lead_id", "does not belong to this email")]
        return derived, []
    if lead_id is not None:
        return str(lead_id), []
    return None, [_err("email", "give the lead's email or lead_id")]
