"""The forms (intake's): their fields and labels, consent, captcha, the HubSpot and Web-to-Lead
addresses they are posted to, and how the tracking script on a website treats visitors."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from leadrelay.rules.values import Origin, StrictModel, web_origin

CONSENT_LANGUAGES = ("en", "sv", "de", "nl", "zh")


class Captcha(StrictModel):
    """A captcha verified server-side (Cloudflare Turnstile or reCAPTCHA ``siteverify``)."""

    kind: Literal["turnstile", "recaptcha"]
    site_key: str | None = Field(default=None, description="the public site key the page's widget needs")
    secret_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$", description="environment variable holding the secret")
    verify_url: str | None = Field(
        default=None, description="siteverify URL (default: the provider's; LEADRELAY_CAPTCHA_VERIFY_URL overrides)"
    )
    fail_open: bool = Field(
        default=False, description="accept submissions while the verifier cannot be reached (default: 503)"
    )

    @property
    def token_field(self) -> str:
        return "cf-turnstile-response" if self.kind == "turnstile" else "g-recaptcha-response"


class HubSpotForm(StrictModel):
    """The HubSpot Forms API v3 address of a form: POST /submissions/v3/integration/submit/{portal_id}/{form_guid}."""

    portal_id: str = Field(pattern=r"^[0-9]{1,20}$")
    form_guid: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")
    inline_message: str = Field(default="Thanks for submitting the form.")
    redirect_uri: str | None = Field(default=None, description="answer {redirectUri} instead of {inlineMessage}")


LANGUAGES = ("en", "sv", "de", "nl", "zh")


def _web_url(value: Any) -> Any:
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
    return value


WebUrl = Annotated[str, AfterValidator(_web_url)]


class Labels(StrictModel):
    """A text in each language the snippet speaks; English is required, the others fall back to it."""

    en: str
    sv: str | None = None
    de: str | None = None
    nl: str | None = None
    zh: str | None = None

    def get(self, lang: str) -> str:
        return str(getattr(self, lang, None) or self.en)


class FieldType(StrEnum):
    TEXT = "text"
    EMAIL = "email"
    TEL = "tel"
    COUNTRY = "country"
    NUMBER = "number"
    URL = "url"
    TEXTAREA = "textarea"


class FormField(StrictModel):
    """One field of a form as the embed snippet renders it (the server validates it the same way)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)
    type: FieldType = FieldType.TEXT
    required: bool = False
    label: Labels | None = Field(default=None, description="default: the built-in label of a known field")


class Consent(StrictModel):
    """A consent checkbox: its field name, its text per language (en required; sv, de, nl, zh fall back
    to it), and whether a submission without the tick is refused (422)."""

    field: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100, description="the form field that carries the tick")
    text: Labels = Field(description="the text the person agrees to, per language")
    required: bool = Field(default=False, description="a submission without the tick is refused (422)")


class Form(StrictModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    handraiser: bool = False
    fields: list[FormField] = Field(
        default_factory=list, description="what the embed snippet shows; default: email (required), name, company"
    )
    thank_you_url: WebUrl | None = Field(default=None, description="a plain HTML post lands here (303)")
    error_url: WebUrl | None = Field(
        default=None, description="a plain HTML post with errors lands here (default: back to the form's page)"
    )
    origins: list[Origin] = Field(default_factory=list, description="web origins whose pages may post this form")
    honeypot: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="a field hidden from people: a submission that fills it is answered 202 and dropped",
    )
    consent: Consent | None = None
    captcha: Captcha | None = None
    hubspot: HubSpotForm | None = None

    @model_validator(mode="after")
    def _fields_unique(self) -> Form:
        names = [f.name for f in self.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"form {self.id!r}: field(s) listed twice: {', '.join(dupes)}")
        special = {n for n in (self.honeypot, self.consent.field if self.consent else None) if n}
        if clash := sorted(special & set(names)):
            raise ValueError(f"form {self.id!r}: {', '.join(clash)} is the honeypot or consent field, not a field")
        for url in (self.thank_you_url, self.error_url):
            if url is not None and web_origin(_origin_of(url)) not in self.origins:
                raise ValueError(f"form {self.id!r}: {url!r} is not on one of the form's origins")
        return self


class WebToLead(StrictModel):
    """A Salesforce Web-to-Lead form posting to POST /servlet/servlet.WebToLead with this ``oid``."""

    oid: str = Field(pattern=r"^[A-Za-z0-9]{1,18}$")
    form: str = Field(description="the form (forms[].id) its submissions count as")
    return_hosts: list[str] = Field(
        default_factory=list, description="hosts retURL may point to (no open redirect); empty: no redirect"
    )
    fields: dict[str, str] = Field(
        default_factory=dict, description="custom field ids (00N...) to field names, e.g. {00N5e00000ABCDE: budget}"
    )


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Website(StrictModel):
    """How the tracking script (track.js) treats visitors."""

    require_consent: bool = Field(
        default=False, description="record nothing until the visitor consented (a form's consent box or the page)"
    )
    honour_do_not_track: bool = Field(default=True, description="record nothing when the browser sends DNT: 1")
    honour_global_privacy_control: bool = Field(default=True, description="record nothing under Sec-GPC: 1")


def check_forms(forms: list[Form], web_to_lead: list[WebToLead]) -> list[str]:
    """What is wrong across the forms and the Web-to-Lead sources (one line each)."""
    problems: list[str] = []
    ids = {f.id for f in forms}
    hubspot = [(f.hubspot.portal_id, f.hubspot.form_guid.lower()) for f in forms if f.hubspot]
    for key in sorted({k for k in hubspot if hubspot.count(k) > 1}):
        problems.append(f"forms: HubSpot portal {key[0]} form {key[1]} is mapped to several forms")
    oids = [w.oid for w in web_to_lead]
    for oid in sorted({o for o in oids if oids.count(o) > 1}):
        problems.append(f"web_to_lead: oid {oid} is used twice")
    for i, w in enumerate(web_to_lead):
        if w.form not in ids:
            problems.append(f"web_to_lead.{i}.form: unknown form {w.form!r}")
    return problems
