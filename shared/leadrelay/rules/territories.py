"""Territories, their reps, named accounts and how accounts are matched (routing's)."""

from __future__ import annotations

from pydantic import Field

from leadrelay.rules.values import NAME_MAX, CountryCode, StrictModel


class Rep(StrictModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)
    name: str = Field(min_length=1, max_length=NAME_MAX)
    email: str
    capacity: int = Field(default=50, ge=1, description="open assignments before the rep is skipped")
    available: bool = True


class Territory(StrictModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100)
    name: str
    countries: list[CountryCode] = Field(default_factory=list)
    fallback: bool = Field(default=False, description="takes every lead no other territory covers")
    reps: list[Rep] = Field(min_length=1)


class Account(StrictModel):
    """A named (global) account: its leads go to its owner wherever they come from."""

    id: str
    name: str
    domains: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    owner: str = Field(description="rep id")


class Routing(StrictModel):
    account_match_score: int = Field(default=90, ge=50, le=100, description="fuzzy company-name match, 0-100")
