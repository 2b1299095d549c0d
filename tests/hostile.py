"""Hypothesis strategies for hostile and sloppy text, shared by the input-policy tests."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import strategies as st

from leadrelay.bus.memory import MemoryBus
from leadrelay.events import DLQ_SUFFIX, Record, all_topics

# What a hostile or sloppy client sends: NUL, unpaired surrogates (high and low), C0 and C1
# controls, terminal escapes, line breaks of every kind, bidi overrides and isolates,
# zero-width and joiner characters, combining marks (decomposed text), a byte order mark,
# noncharacters, emoji sequences, CJK, RTL scripts.
SPECIALS = [
    "\x00",
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\x01",
    "\x07",
    "\x08",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\x9f",
    "\r\n",
    "\r",
    "\n",
    "\t",
    "\v",
    "\f",
    "\u2028",
    "\u2029",
    "\u202e",
    "\u202d",
    "\u2066",
    "\u2069",
    "\u200b",
    "\u200d",
    "\u0301",
    "e\u0301",
    "A\u030asa",
    "\ufeff",
    "\ufffe",
    "\uffff",
    "\U0010ffff",
    "😀",
    "👩\u200d👩\u200d👧",
    "🇸🇪",
    "漢字",
    "总监",
    "مدير",
    "עברית",
    "Geschäftsführer",
    "%00",
    "\\u0000",
    "'; DROP TABLE leads; --",
    '{"a": [1]}',
    "<script>alert(1)</script>",
]

_characters = st.one_of(
    st.characters(codec=None),  # every category but surrogates
    st.characters(categories=["Cs"]),  # unpaired surrogates
    st.characters(max_codepoint=0x9F),  # ASCII, C0 and C1 controls, more often
)

short_text = st.lists(
    st.one_of(st.sampled_from(SPECIALS), st.text(_characters, max_size=12)), min_size=0, max_size=6
).map("".join)
long_text = st.tuples(st.sampled_from(SPECIALS), st.integers(100, 1500), short_text).map(
    lambda t: t[0] * 3 + "x" * t[1] + t[2]
)
hostile_text = st.one_of(short_text, short_text, short_text, long_text)
# The same without the two characters the policy refuses: what must be accepted and stored.
storable_text = hostile_text.map(lambda t: re.sub("[\x00\ud800-\udfff]", "", t))
field_values = st.one_of(hostile_text, storable_text, storable_text)


def json_bytes(body: Any) -> bytes:
    """JSON as a client would send it: non-ASCII escaped, so an unpaired surrogate travels as
    the escape ``\\ud800`` (valid JSON syntax, not valid Unicode)."""
    return json.dumps(body, ensure_ascii=True).encode()


def form_bytes(fields: dict[str, str]) -> bytes:
    """``application/x-www-form-urlencoded`` of ``fields``; a surrogate is percent-encoded as the
    bytes Python would give it (not valid UTF-8, so the server refuses it, naming the field)."""

    def enc(text: str) -> str:
        return quote(text.encode("utf-8", "surrogatepass"), safe="")

    return "&".join(f"{enc(k)}={enc(v)}" for k, v in fields.items()).encode()


# ------------------------------------------------------------ requests


@dataclass(frozen=True)
class Post:
    """One POST, ready to send to any deployment: the same bytes embedded and distributed."""

    service: str  # the service that answers it when distributed
    path: str
    content: bytes
    content_type: str
    # A demo request (form or event) from a lead the lead definition qualifies, carrying
    # nothing but the text under test: once accepted (202) it must end assigned.
    qualifying_lead: bool = False

    def __repr__(self) -> str:  # hypothesis prints it for a failing example
        return f"POST {self.path} ({self.content_type}) {self.content[:2000]!r}"


# Free-text fields (canonical, aliases, custom) are most of the draws: any text is valid there.
# Fields with a syntax of their own (phone, country, size, website) mostly answer 422 to
# hostile text, so they come up less often. Field names are hostile text too.
FREE_TEXT_FIELDS = [
    "first_name",
    "last_name",
    "company",
    "job_title",
    "industry",
    "page_url",
    "firstname",
    "organisation",
    "title",
    "message",
    "utm_source",
]
SYNTAX_FIELDS = ["country", "phone", "company_size", "website"]
FIELD_NAMES = FREE_TEXT_FIELDS + SYNTAX_FIELDS
field_names = st.one_of(
    st.sampled_from(FREE_TEXT_FIELDS),
    st.sampled_from(FREE_TEXT_FIELDS),
    st.sampled_from(FREE_TEXT_FIELDS),
    st.sampled_from(SYNTAX_FIELDS),
    short_text.filter(lambda n: "mail" not in n.lower()),
)
tokens = st.uuids().map(lambda u: u.hex[:16])


def qualifying_email(token: str) -> str:
    """An address no disqualifier of the example rules matches (they look at the email only)."""
    return f"h{token}@hostile-input.se"


@st.composite
def form_posts(draw: st.DrawFn) -> Post:
    fields = draw(st.dictionaries(field_names, field_values, max_size=8))
    clean_email = draw(st.booleans() | st.booleans())  # mostly a valid, qualifying address
    token = draw(tokens)
    email = qualifying_email(token) if clean_email else draw(st.sampled_from(["", "x", qualifying_email(token)]))
    if not clean_email:
        email += draw(hostile_text)
    fields["email"] = email
    form = draw(st.sampled_from(["demo-request", "contact-sales", "newsletter"]))
    urlencoded = draw(st.booleans())
    qualifying = clean_email and form != "newsletter"
    path = f"/v1/forms/{form}/submissions"
    if urlencoded:
        return Post("intake", path, form_bytes(fields), "application/x-www-form-urlencoded", qualifying)
    return Post("intake", path, json_bytes(fields), "application/json", qualifying)


ACTIVITY_TYPES = [
    "page_viewed",
    "email_opened",
    "email_clicked",
    "content_downloaded",
    "webinar_registered",
    "event_attended",
    "demo_requested",
]


@st.composite
def event_posts(draw: st.DrawFn) -> Post:
    clean_email = draw(st.booleans() | st.booleans())
    email = qualifying_email(draw(tokens))
    body: dict[str, Any] = {
        "type": draw(st.sampled_from(ACTIVITY_TYPES)),
        "email": email if clean_email else email + draw(hostile_text),
    }
    for name in ("url", "message_id"):
        if draw(st.booleans()):
            body[name] = draw(field_values)
    if draw(st.booleans()):
        body["properties"] = draw(st.dictionaries(field_values, field_values, max_size=4))
    qualifying = clean_email and body["type"] == "demo_requested"
    return Post("intake", "/v1/events", json_bytes(body), "application/json", qualifying)


@st.composite
def feedback_posts(draw: st.DrawFn, lead_id: str, rep_id: str) -> Post:
    """A touch or a disposition for ``lead_id`` (assigned to ``rep_id``), with hostile text."""
    rep = rep_id if draw(st.booleans() | st.booleans()) else rep_id + draw(hostile_text)
    if draw(st.booleans()):
        body: dict[str, Any] = {"rep_id": rep, "channel": draw(st.sampled_from(["call", "email", "meeting"]))}
        if draw(st.booleans() | st.booleans()):
            body["note"] = draw(field_values)
        return Post("feedback", f"/v1/leads/{lead_id}/touches", json_bytes(body), "application/json")
    body = {"rep_id": rep, "disposition": draw(st.sampled_from(["accepted", "recycle", "junk", "unreachable"]))}
    if draw(st.booleans() | st.booleans()):
        body["reason"] = draw(field_values)
    return Post("feedback", f"/v1/leads/{lead_id}/dispositions", json_bytes(body), "application/json")


# ------------------------------------------------------------ outcomes


def answer(r: httpx.Response) -> tuple[int, Any]:
    """What must be the same in every mode: the status, and the body of a refusal."""
    return (r.status_code, r.json() if r.status_code >= 400 else None)


def dead_letters(bus: object) -> list[Record]:
    """Every record on a dead-letter topic of an embedded bus."""
    assert isinstance(bus, MemoryBus)
    return [r for topic in all_topics() if topic.endswith(DLQ_SUFFIX) for r in bus.records(topic)]
