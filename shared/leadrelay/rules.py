"""The business rules revenue operations owns: forms, lead definition, territories, SLA policies.

They live in one YAML file kept in version control (``LEADRELAY_CONFIG``), are
validated at start-up with errors that name the offending key, and are served
read-only by the API, because the definition must be shared and visible.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import pycountry
import yaml
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from leadrelay.events import ActivityType, Qualification

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_duration(value: Any) -> Any:
    """Accept ``"48h"``, ``"30m"``, ``"2s"``, ``"5d"`` besides ISO 8601 and seconds."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


def country_code(value: str) -> str:
    """ISO 3166-1 alpha-2 code for a code (alpha-2/alpha-3) or an English name; ValueError otherwise."""
    try:
        return str(pycountry.countries.lookup(value.strip()).alpha_2)
    except LookupError:
        raise ValueError(f"unknown country {value!r}") from None


def _country(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError('YAML read a bare NO/YES/ON/OFF as a boolean: quote the country code, e.g. "NO"')
    return country_code(value) if isinstance(value, str) else value


CountryCode = Annotated[str, BeforeValidator(_country)]


# A person's name as the notifications keep it (sla-monitor's recipient_name column).
NAME_MAX = 200


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """A test on one profile field. Exactly one operator must be given."""

    field: str
    equals: str | int | None = None
    in_: list[str] | None = Field(default=None, alias="in")
    matches: str | None = Field(default=None, description="case-insensitive regular expression")
    between: tuple[float, float] | None = None
    exists: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("equals", "in_", mode="before")
    @classmethod
    def _no_yaml_booleans(cls, value: Any) -> Any:
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, bool) for v in values):
            raise ValueError('YAML read a bare NO/YES/ON/OFF/true/false as a boolean: quote it, e.g. "NO"')
        return value

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [n for n in ("equals", "in_", "matches", "between", "exists") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"condition on {self.field!r} needs exactly one of equals, in, matches, between, exists")
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError(f"between on {self.field!r}: the low bound {self.between[0]} is above the high bound")
        if self.matches is not None:
            try:
                re.compile(self.matches)
            except re.error as exc:
                raise ValueError(f"bad regular expression {self.matches!r}: {exc}") from exc
        return self

    def test(self, value: Any) -> bool:
        if self.exists is not None:
            return (value not in (None, "")) == self.exists
        if value is None:
            return False
        if self.equals is not None:
            return str(value).casefold() == str(self.equals).casefold()
        if self.in_ is not None:
            return str(value).casefold() in {v.casefold() for v in self.in_}
        if self.matches is not None:
            return re.search(self.matches, str(value), re.IGNORECASE) is not None
        if self.between is not None:
            try:
                number = float(value)
            except (TypeError, ValueError):
                return False
            return self.between[0] <= number <= self.between[1]
        return False


class FitRule(_Strict):
    name: str
    when: list[Condition] = Field(min_length=1, description="all must hold")
    points: int


class EngagementRule(_Strict):
    name: str
    activity: list[ActivityType] = Field(min_length=1)
    url_contains: list[str] = Field(default_factory=list, description="any of these in the URL; empty = any URL")
    points: int = Field(description="per matching activity")
    max_points: int | None = Field(default=None, description="cap for this rule")


class Disqualifier(_Strict):
    name: str
    when: list[Condition] = Field(min_length=1)


class LeadDefinition(_Strict):
    threshold: int = Field(gt=0, description="fit + engagement at or above this makes an MQL")
    fit: list[FitRule] = Field(default_factory=list)
    engagement: list[EngagementRule] = Field(default_factory=list)
    disqualify: list[Disqualifier] = Field(default_factory=list)
    handraiser_activities: list[ActivityType] = Field(
        default_factory=lambda: [ActivityType.DEMO_REQUESTED],
        description="behaviour events that hand the lead to sales at once, like a handraiser form",
    )
    handraiser_requires: list[Condition] = Field(
        default_factory=list,
        description=(
            "conditions a handraiser (form or activity) must meet to go to sales at once; one that does not"
            " (e.g. a free-mail address) is scored as usual and goes to sales when it reaches the threshold"
        ),
    )
    history_limit: int = Field(default=20, ge=1, description="activities carried in the handoff packet")
    duplicate_window: Duration = Field(
        default=timedelta(minutes=10),
        description="the same lead submitting the same form again within this long is recorded once (no second score)",
    )


CONSENT_LANGUAGES = ("en", "sv", "de", "nl", "zh")


class Captcha(_Strict):
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


class HubSpotForm(_Strict):
    """The HubSpot Forms API v3 address of a form: POST /submissions/v3/integration/submit/{portal_id}/{form_guid}."""

    portal_id: str = Field(pattern=r"^[0-9]{1,20}$")
    form_guid: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")
    inline_message: str = Field(default="Thanks for submitting the form.")
    redirect_uri: str | None = Field(default=None, description="answer {redirectUri} instead of {inlineMessage}")


# ---------------------------------------------------------------- forms on a website

LANGUAGES = ("en", "sv", "de", "nl", "zh")


def web_origin(value: Any) -> Any:
    """A web origin as browsers send it: ``scheme://host[:port]``, nothing else (no path, no ``*``)."""
    if not isinstance(value, str):
        return value
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or "*" in value:
        raise ValueError(f"{value!r} is not an origin: give scheme://host[:port], e.g. https://www.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{value!r} is not an origin: no path, query or user, only scheme://host[:port]")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} has a bad port") from None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.encode("idna").decode("ascii") if not parts.hostname.isascii() else parts.hostname
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


Origin = Annotated[str, BeforeValidator(web_origin)]


def _web_url(value: Any) -> Any:
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
    return value


WebUrl = Annotated[str, AfterValidator(_web_url)]


class Labels(_Strict):
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


class FormField(_Strict):
    """One field of a form as the embed snippet renders it (the server validates it the same way)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)
    type: FieldType = FieldType.TEXT
    required: bool = False
    label: Labels | None = Field(default=None, description="default: the built-in label of a known field")


class Consent(_Strict):
    """A consent checkbox: its field name, its text per language (en required; sv, de, nl, zh fall back
    to it), and whether a submission without the tick is refused (422)."""

    field: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100, description="the form field that carries the tick")
    text: Labels = Field(description="the text the person agrees to, per language")
    required: bool = Field(default=False, description="a submission without the tick is refused (422)")


class Form(_Strict):
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


class WebToLead(_Strict):
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


class Website(_Strict):
    """How the tracking script (track.js) treats visitors."""

    require_consent: bool = Field(
        default=False, description="record nothing until the visitor consented (a form's consent box or the page)"
    )
    honour_do_not_track: bool = Field(default=True, description="record nothing when the browser sends DNT: 1")
    honour_global_privacy_control: bool = Field(default=True, description="record nothing under Sec-GPC: 1")


class Rep(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)
    name: str = Field(min_length=1, max_length=NAME_MAX)
    email: str
    capacity: int = Field(default=50, ge=1, description="open assignments before the rep is skipped")
    available: bool = True


class Territory(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100)
    name: str
    countries: list[CountryCode] = Field(default_factory=list)
    fallback: bool = Field(default=False, description="takes every lead no other territory covers")
    reps: list[Rep] = Field(min_length=1)


class Account(_Strict):
    """A named (global) account: its leads go to its owner wherever they come from."""

    id: str
    name: str
    domains: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    owner: str = Field(description="rep id")


class SlaPolicy(_Strict):
    first_touch: Duration = Field(description="first touch within this long after assignment")
    disposition: Duration = Field(description="a status from sales within this long after assignment")


def _parse_warn_before(value: Any) -> Any:
    """``"15m"`` (a duration before the deadline) or ``"25%"`` (that share of the deadline's window)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            share = float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"{value!r} is not a percentage") from None
        if not 0 < share < 1:
            raise ValueError(f"{value!r}: a share of the deadline's window must be above 0% and below 100%")
        return share
    parsed = _parse_duration(value)
    if isinstance(parsed, timedelta):
        return parsed
    if isinstance(parsed, int | float) and not isinstance(parsed, bool):
        return timedelta(seconds=parsed)
    try:
        return TypeAdapter(timedelta).validate_python(parsed)
    except ValidationError:
        raise ValueError(f"{value!r}: give a duration (15m, 2h, PT15M) or a percentage (25%)") from None


WarnBefore = Annotated[timedelta | float, BeforeValidator(_parse_warn_before)]


class Sla(_Strict):
    mql: SlaPolicy
    handraiser: SlaPolicy
    warn_before: WarnBefore | None = Field(
        default=None,
        description=(
            "warn the rep this long before each deadline (e.g. 15m), or this share of the deadline's window"
            " before it (e.g. 25%: 15 minutes before a 1-hour deadline); unset: no warnings"
        ),
    )

    @field_validator("warn_before")
    @classmethod
    def _positive(cls, value: timedelta | float | None) -> timedelta | float | None:
        if isinstance(value, timedelta) and value <= timedelta(0):
            raise ValueError("warn_before must be a positive duration or a percentage")
        return value

    def policy(self, qualification: Qualification) -> SlaPolicy:
        return self.handraiser if qualification is Qualification.HANDRAISER else self.mql

    def warn_at(self, started_at: datetime, due_at: datetime) -> datetime | None:
        """When to warn of a deadline (None: no warning, or it would come at or before the start)."""
        if self.warn_before is None:
            return None
        before = (
            self.warn_before if isinstance(self.warn_before, timedelta) else (due_at - started_at) * self.warn_before
        )
        at = due_at - before
        return at if at > started_at else None


class Routing(_Strict):
    account_match_score: int = Field(default=90, ge=50, le=100, description="fuzzy company-name match, 0-100")


# ---------------------------------------------------------------- people and roles
# Who is who: reps live in their territory (role rep); managers, ops and admins in
# the top-level `people` section. Ids are unique across both.


class Role(StrEnum):
    REP = "rep"  # sees and acts on their own leads
    MANAGER = "manager"  # sees and acts on their territories' leads and reps
    OPS = "ops"  # sees everything, acts on SLA alerts and availability
    ADMIN = "admin"  # everything; owns the rules, sources and people


class Person(BaseModel):
    """A person who signs in. A rep's territories are the one territory it belongs to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)
    name: str = Field(min_length=1, max_length=NAME_MAX)
    email: str | None = None
    role: Role
    territories: list[str] = Field(default_factory=list)


def _check_people(rules: Rules) -> list[str]:
    problems: list[str] = []
    territories = {t.id for t in rules.territories}
    rep_home = {r.id: t.id for t in rules.territories for r in t.reps}
    seen: dict[str, int] = {}
    for i, person in enumerate(rules.staff):
        where = f"people.{i}"
        if person.id in rep_home:
            problems.append(f"{where}.id: {person.id!r} is already a rep of territory {rep_home[person.id]!r}")
        elif person.id in seen:
            problems.append(f"{where}.id: duplicate person id {person.id!r} (also people.{seen[person.id]})")
        seen.setdefault(person.id, i)
        if person.role is Role.REP:
            problems.append(f"{where}.role: reps are listed under their territory's reps, not in people")
        elif person.role is Role.MANAGER:
            if not person.territories:
                problems.append(f"{where}.territories: a manager needs at least one territory")
            for t in person.territories:
                if t not in territories:
                    problems.append(f"{where}.territories: unknown territory {t!r}")
        elif person.territories:
            problems.append(f"{where}.territories: only managers have territories ({person.role.value} sees all)")
    return problems


# ---------------------------------------------------------------- machine sources
# Machine callers (tracking clients, a CRM, a metrics scraper) authenticate with an API key
# per source, read from the environment variable named by `key_env` (never from this file).


class SourceRole(StrEnum):
    TRACKING = "tracking"  # posts behaviour events
    CRM = "crm"  # reads leads and the suppression list, logs touches and dispositions for a named rep
    MONITORING = "monitoring"  # scrapes /metrics


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)
    name: str | None = None
    role: SourceRole
    key_env: str = Field(
        pattern=r"^[A-Z][A-Z0-9_]*$",
        description="environment variable holding the source's API key (two, comma-separated, during a rotation)",
    )
    origins: list[Origin] = Field(
        default_factory=list, description="web origins whose pages may call the tracking endpoints with this source"
    )


def _check_sources(rules: Rules) -> list[str]:
    problems: list[str] = []
    ids: dict[str, int] = {}
    envs: dict[str, int] = {}
    for i, source in enumerate(rules.sources):
        if source.id in ids:
            problems.append(f"sources.{i}.id: duplicate source id {source.id!r} (also sources.{ids[source.id]})")
        if source.key_env in envs:
            problems.append(
                f"sources.{i}.key_env: {source.key_env} is also the key of sources.{envs[source.key_env]}"
                " (each source needs its own key)"
            )
        ids.setdefault(source.id, i)
        envs.setdefault(source.key_env, i)
    return problems


# ---------------------------------------------------------------- notifications


class NotificationType(StrEnum):
    """What Leadrelay tells people and systems of (the ``type`` of a webhook body)."""

    LEAD_ASSIGNED = "lead.assigned"  # to the rep: the handoff packet, the deadlines, a link
    SLA_WARNING = "sla.warning"  # to the rep, sla.warn_before a deadline
    SLA_BREACHED = "sla.breached"  # to the rep and their territory's managers
    LEAD_RECYCLED = "lead.recycled"  # to marketing: sales sent the lead back (recycle, unreachable)


_ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"
_ENDPOINT_ID = r"^[a-z0-9][a-z0-9_.-]*$"


def _email_address(value: str) -> str:
    try:
        return str(validate_email(value.strip(), check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not an e-mail address: {exc}") from None


class Webhook(_Strict):
    """A system (a CRM...) told of events over HTTPS, signed per the Standard Webhooks specification."""

    id: str = Field(pattern=_ENDPOINT_ID)
    url: str
    secret_env: str = Field(pattern=_ENV_NAME, description='environment variable holding the "whsec_..." secret')
    events: list[NotificationType] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class SlackWebhook(_Strict):
    """A Slack incoming webhook: a territory's channel, one person, or (neither) every lead's events."""

    id: str = Field(pattern=_ENDPOINT_ID)
    url_env: str = Field(pattern=_ENV_NAME, description="environment variable holding the incoming webhook's URL")
    territory: str | None = Field(default=None, description="only events about this territory's leads")
    person: str | None = Field(default=None, description="only events this person is told of")
    events: list[NotificationType] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_scope(self) -> SlackWebhook:
        if self.territory is not None and self.person is not None:
            raise ValueError(f"slack webhook {self.id!r}: give territory or person, not both")
        return self


class EmailNotifications(_Strict):
    """E-mail over SMTP (LEADRELAY_SMTP_*) to each person an event concerns, at their address."""

    events: list[NotificationType] = Field(min_length=1)


class Marketing(_Strict):
    emails: list[Annotated[str, AfterValidator(_email_address)]] = Field(
        default_factory=list, description="who hears by e-mail of leads sales sent back (lead.recycled)"
    )


class Notifications(_Strict):
    webhooks: list[Webhook] = Field(default_factory=list)
    slack: list[SlackWebhook] = Field(default_factory=list)
    email: EmailNotifications | None = None
    marketing: Marketing = Field(default_factory=Marketing)


# ---------------------------------------------------------------- the tracking API
# Segment/RudderStack clients post to intake with a tracking source's key as their write key.


class Tracking(_Strict):
    """How tracking calls (Segment/RudderStack ``track``, ``page``, ``identify``) become activities."""

    events: dict[str, ActivityType] = Field(
        default_factory=dict,
        description='a track call\'s event name -> the activity it records, e.g. "Demo Requested": demo_requested',
    )
    unmapped: ActivityType | Literal["ignore"] = Field(
        default="ignore",
        description="what a track call whose name is not under events records: an activity type, or ignore",
    )
    visitor_fields: list[str] = Field(
        default_factory=lambda: ["anonymous_id", "hutk", "ajs_anonymous_id"],
        description=(
            "form fields that carry the visitor's anonymous id (analytics.js's anonymousId, HubSpot's hutk,"
            " a cookie copied into a hidden field): a submission with one joins the visitor's history to the lead"
        ),
    )

    @field_validator("visitor_fields")
    @classmethod
    def _field_names(cls, value: list[str]) -> list[str]:
        return [re.sub(r"[\s\-.]+", "_", v.strip().lower()) for v in value]


class Rules(_Strict):
    forms: list[Form] = Field(min_length=1)
    lead_definition: LeadDefinition
    territories: list[Territory] = Field(min_length=1)
    accounts: list[Account] = Field(default_factory=list)
    routing: Routing = Field(default_factory=Routing)
    sla: Sla
    # `people` in the file; the attribute has another name because `people()` lists everyone.
    staff: list[Person] = Field(default_factory=list, alias="people")
    notifications: Notifications = Field(default_factory=Notifications)
    sources: list[Source] = Field(default_factory=list)
    tracking: Tracking = Field(default_factory=Tracking)
    website: Website = Field(default_factory=Website)
    web_to_lead: list[WebToLead] = Field(default_factory=list)
    _people: dict[str, Person] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Rules:
        problems: list[str] = []
        for kind, ids in (
            ("form", [f.id for f in self.forms]),
            ("territory", [t.id for t in self.territories]),
            ("rep", [r.id for t in self.territories for r in t.reps]),
            ("account", [a.id for a in self.accounts]),
        ):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                problems.append(f"duplicate {kind} id(s): {', '.join(dupes)}")
        owner: dict[str, str] = {}
        for t in self.territories:
            for c in t.countries:
                if c in owner:
                    problems.append(f"country {c} is in both territories {owner[c]!r} and {t.id!r}")
                owner[c] = t.id
        fallbacks = [t.id for t in self.territories if t.fallback]
        if len(fallbacks) != 1:
            problems.append(f"exactly one territory must have fallback: true (found {len(fallbacks)})")
        reps = {r.id for t in self.territories for r in t.reps}
        for a in self.accounts:
            if a.owner not in reps:
                problems.append(f"account {a.id!r}: owner {a.owner!r} is not a rep of any territory")
        problems += self._intake_problems()
        problems += _check_people(self)
        problems += _check_sources(self)
        problems += self._notification_problems()
        if problems:
            raise ValueError("; ".join(problems))
        self._people = {p.id: p for p in reversed(self._everyone())}  # the first of an id wins
        return self

    def _everyone(self) -> list[Person]:
        reps = [
            Person(id=r.id, name=r.name, email=r.email, role=Role.REP, territories=[t.id])
            for t in self.territories
            for r in t.reps
        ]
        return reps + list(self.staff)

    # People.
    def person(self, person_id: str) -> Person | None:
        """Anyone who signs in, reps included."""
        return self._people.get(person_id)

    def people(self) -> list[Person]:
        """Everyone: the reps (territory by territory), then the `people` section, in file order."""
        return self._everyone()

    def managers_of(self, territory_id: str) -> list[Person]:
        return [p for p in self.staff if p.role is Role.MANAGER and territory_id in p.territories]

    def source(self, source_id: str) -> Source | None:
        return next((s for s in self.sources if s.id == source_id), None)

    # Look-ups used by the services.
    def form(self, form_id: str) -> Form | None:
        return next((f for f in self.forms if f.id == form_id), None)

    def rep(self, rep_id: str) -> Rep | None:
        return next((r for t in self.territories for r in t.reps if r.id == rep_id), None)

    def territory_of_rep(self, rep_id: str) -> Territory | None:
        return next((t for t in self.territories if any(r.id == rep_id for r in t.reps)), None)

    def territory_for_country(self, country: str | None) -> Territory:
        if country:
            for t in self.territories:
                if country in t.countries:
                    return t
        return self.fallback_territory

    @property
    def fallback_territory(self) -> Territory:
        return next(t for t in self.territories if t.fallback)

    def _intake_problems(self) -> list[str]:
        problems: list[str] = []
        forms = {f.id for f in self.forms}
        hubspot = [(f.hubspot.portal_id, f.hubspot.form_guid.lower()) for f in self.forms if f.hubspot]
        for key in sorted({k for k in hubspot if hubspot.count(k) > 1}):
            problems.append(f"forms: HubSpot portal {key[0]} form {key[1]} is mapped to several forms")
        oids = [w.oid for w in self.web_to_lead]
        for oid in sorted({o for o in oids if oids.count(o) > 1}):
            problems.append(f"web_to_lead: oid {oid} is used twice")
        for i, w in enumerate(self.web_to_lead):
            if w.form not in forms:
                problems.append(f"web_to_lead.{i}.form: unknown form {w.form!r}")
        return problems

    def hubspot_form(self, portal_id: str, form_guid: str) -> Form | None:
        return next(
            (
                f
                for f in self.forms
                if f.hubspot and f.hubspot.portal_id == portal_id and f.hubspot.form_guid.lower() == form_guid.lower()
            ),
            None,
        )

    def web_to_lead_source(self, oid: str) -> WebToLead | None:
        return next((w for w in self.web_to_lead if w.oid == oid), None)

    def _notification_problems(self) -> list[str]:
        problems: list[str] = []
        n = self.notifications
        ids = [w.id for w in n.webhooks] + [s.id for s in n.slack]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            problems.append(f"notifications: endpoint id(s) used twice across webhooks and slack: {', '.join(dupes)}")
        territories = {t.id for t in self.territories}
        people = {p.id for p in self.people()}
        for s in n.slack:
            if s.territory is not None and s.territory not in territories:
                problems.append(f"notifications.slack {s.id!r}: unknown territory {s.territory!r}")
            if s.person is not None and s.person not in people:
                problems.append(f"notifications.slack {s.id!r}: unknown person {s.person!r}")
        if n.email is not None and NotificationType.LEAD_RECYCLED in n.email.events and not n.marketing.emails:
            problems.append("notifications.email: lead.recycled goes to notifications.marketing.emails, which is empty")
        return problems


class RulesError(ValueError):
    """The rules file is missing or invalid; the message says where."""


def parse_rules(data: Any, source: str = "<rules>") -> Rules:
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {where}: {err['msg']}")
        raise RulesError(f"invalid rules in {source}:\n" + "\n".join(lines)) from None


def load_rules(path: Path) -> Rules:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"rules file {path} is not valid YAML: {exc}") from None
    return parse_rules(data, str(path))


ScopeName = Literal["fit", "engagement"]
