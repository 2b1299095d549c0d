"""Reading the rules file: YAML in, :class:`Rules` out, or a :class:`RulesError` naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from leadrelay.rules.model import Rules


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
