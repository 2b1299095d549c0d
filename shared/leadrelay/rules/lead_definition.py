"""The lead definition (scoring's): fit and engagement rules, disqualifiers, the threshold, handraisers."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from leadrelay.events import ActivityType
from leadrelay.rules.conditions import Condition
from leadrelay.rules.values import Duration, StrictModel


class FitRule(StrictModel):
    name: str
    when: list[Condition] = Field(min_length=1, description="all must hold")
    points: int


class EngagementRule(StrictModel):
    name: str
    activity: list[ActivityType] = Field(min_length=1)
    url_contains: list[str] = Field(default_factory=list, description="any of these in the URL; empty = any URL")
    points: int = Field(description="per matching activity")
    max_points: int | None = Field(default=None, description="cap for this rule")


class Disqualifier(StrictModel):
    name: str
    when: list[Condition] = Field(min_length=1)


class LeadDefinition(StrictModel):
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


ScopeName = Literal["fit", "engagement"]
