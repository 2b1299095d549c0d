"""The SLA policies (sla-monitor's): the deadlines of an assignment and when to warn of them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError, field_validator

from leadrelay.events import Qualification
from leadrelay.rules.values import Duration, StrictModel, parse_duration


class SlaPolicy(StrictModel):
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
    parsed = parse_duration(value)
    if isinstance(parsed, timedelta):
        return parsed
    if isinstance(parsed, int | float) and not isinstance(parsed, bool):
        return timedelta(seconds=parsed)
    try:
        return TypeAdapter(timedelta).validate_python(parsed)
    except ValidationError:
        raise ValueError(f"{value!r}: give a duration (15m, 2h, PT15M) or a percentage (25%)") from None


WarnBefore = Annotated[timedelta | float, BeforeValidator(_parse_warn_before)]


class Sla(StrictModel):
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
