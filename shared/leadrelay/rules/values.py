"""The value types the sections of the rules share: durations, countries, web origins, the strict base model."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

import pycountry
from pydantic import BaseModel, BeforeValidator, ConfigDict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> Any:
    """Accept ``"48h"``, ``"30m"``, ``"2s"``, ``"5d"`` besides ISO 8601 and seconds."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


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


class StrictModel(BaseModel):
    """A section of the rules: unknown keys are refused, and the rules never change once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
