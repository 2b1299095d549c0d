"""A condition on one profile field, as the lead definition's rules and disqualifiers test them."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from leadrelay.rules.values import StrictModel


class Condition(StrictModel):
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
