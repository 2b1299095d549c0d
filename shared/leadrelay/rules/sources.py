"""The machine sources (tracking clients, a CRM, a metrics scraper) and their API keys' variables."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from leadrelay.rules.values import Origin

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


def check_sources(sources: list[Source]) -> list[str]:
    """What is wrong across the sources: ids and key variables each used once (one line each)."""
    problems: list[str] = []
    ids: dict[str, int] = {}
    envs: dict[str, int] = {}
    for i, source in enumerate(sources):
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
