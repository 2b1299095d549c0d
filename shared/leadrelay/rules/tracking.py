"""The tracking API (intake's): how Segment/RudderStack calls become activities."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from leadrelay.events import ActivityType
from leadrelay.rules.values import StrictModel

# ---------------------------------------------------------------- the tracking API
# Segment/RudderStack clients post to intake with a tracking source's key as their write key.


class Tracking(StrictModel):
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
