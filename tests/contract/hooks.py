"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.contract.hooks): what the OpenAPI document cannot state.

The document names three formats that JSON Schema has no validator for
(``phone``, ``country``, ``web-address``, see ``intake.schema``): these give
schemathesis values of each, so that its positive cases are ones the server
must accept. And an event's ``occurred_at`` may not be more than 5 minutes
ahead of the server's clock, and a rep's availability ``until`` must be in the
future, rules no JSON Schema keyword expresses: positive cases with a later
``occurred_at`` (or one before year 1 in UTC), or an ``until`` not ahead, are
not generated.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import phonenumbers
import pycountry
import schemathesis
from hypothesis import strategies as st


def _phones() -> list[str]:
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                numbers.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
                numbers.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
    return numbers


def _countries() -> list[str]:
    out = []
    for c in pycountry.countries:
        out.extend((c.alpha_2, c.alpha_3, c.name, c.name.upper()))
    return out


schemathesis.openapi.format("phone", st.sampled_from(_phones()))
schemathesis.openapi.format("country", st.sampled_from(_countries()))
schemathesis.openapi.format(
    "web-address",
    st.from_regex(r"\A(https?://)?(www\.)?[a-z0-9][a-z0-9-]{0,20}\.[a-z]{2,6}(/[a-z0-9_-]{0,20})?\Z"),
)


def _not_ahead(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    try:
        when = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return True  # not a time at all: the server must answer 422, a case worth sending
    try:
        return when.tzinfo is None or when.astimezone(UTC) <= datetime.now(UTC)
    except OverflowError:
        return False  # before 0001-01-01T00:00Z once in UTC: out of the range the server can hold


@schemathesis.hook("filter_body").apply_to(method="POST", path="/v1/events")
def occurred_in_the_past(context: schemathesis.HookContext, body: Any) -> bool:
    return not isinstance(body, dict) or _not_ahead(body.get("occurred_at"))


def _ahead(value: Any) -> bool:
    if not isinstance(value, str):
        return True  # null (until set again), or not a time at all: a case worth sending
    try:
        when = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return True
    try:
        return when.tzinfo is None or when.astimezone(UTC) > datetime.now(UTC)
    except OverflowError:
        return False


# A case filter, not a body filter: the coverage phase applies only case hooks, and its stock
# date-time value (2000-01-01T00:00:00Z) is in the past.
@schemathesis.hook("filter_case").apply_to(method="PUT", path="/v1/reps/{rep_id}/availability")
def until_in_the_future(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    return not isinstance(case.body, dict) or _ahead(case.body.get("until"))
