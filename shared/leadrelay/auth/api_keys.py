"""The machine sources' API keys: from the variables the rules name (two during a rotation), or
generated into the data folder in embedded mode, and matched in constant time."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from leadrelay.auth.keys import GENERATE_HINT, AuthConfigError, generate_key, key_problem, write_private
from leadrelay.logging import get_logger
from leadrelay.rules import Rules
from leadrelay.settings import environment_secret

log = get_logger("leadrelay.auth")

API_KEYS_FILE = "api-keys.json"


class ApiKeys:
    """The sources' API keys, kept as SHA-256 digests and compared in constant time."""

    def __init__(self, keys: Mapping[str, Sequence[str]]) -> None:
        self._digests: list[tuple[bytes, str]] = []
        for source_id, values in keys.items():
            for value in values:
                self._digests.append((hashlib.sha256(value.encode("utf-8")).digest(), source_id))

    def match(self, presented: str) -> str | None:
        """The id of the source whose key this is, or None. Every key is compared, match or not."""
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        found: str | None = None
        for known, source_id in self._digests:
            if hmac.compare_digest(digest, known) and found is None:
                found = source_id
        return found

    def __len__(self) -> int:
        return len(self._digests)


def split_keys(raw: str, where: str) -> list[str]:
    """One key, or two comma-separated during a rotation; each must look random."""
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if len(keys) > 2:
        raise AuthConfigError(f"{where} holds {len(keys)} keys: at most two (the new and the old) during a rotation")
    for k in keys:
        problem = key_problem(k)
        if problem:
            raise AuthConfigError(f"{where}: a key is {problem}; generate one, e.g. {GENERATE_HINT}")
    return keys


def source_keys_from_environment(rules: Rules) -> dict[str, list[str]]:
    """Each source's keys from the variable it names; a source without one is disabled (logged)."""
    out: dict[str, list[str]] = {}
    for source in rules.sources:
        raw = environment_secret(source.key_env)
        if raw is None:
            log.warning("source_disabled", source=source.id, reason=f"{source.key_env} is not set")
            continue
        out[source.id] = split_keys(raw.get_secret_value(), source.key_env)
    return out


def embedded_source_keys(rules: Rules, data_dir: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Embedded mode: keys from the environment where set, else generated once into
    ``data_dir/api-keys.json`` (0600). Returns all keys and the generated or stored ones to show."""
    path = data_dir / API_KEYS_FILE
    stored: dict[str, str] = {}
    if path.exists():
        loaded = json.loads(path.read_text(encoding="utf-8"))
        stored = {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
    out: dict[str, list[str]] = {}
    shown: dict[str, str] = {}
    changed = False
    for source in rules.sources:
        raw = environment_secret(source.key_env)
        if raw is not None:
            out[source.id] = split_keys(raw.get_secret_value(), source.key_env)
            continue
        if source.id not in stored or key_problem(stored[source.id]):
            stored[source.id] = generate_key()
            changed = True
        out[source.id] = [stored[source.id]]
        shown[source.id] = stored[source.id]
    if changed:
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        write_private(tmp, json.dumps(stored, indent=2) + "\n")
        tmp.replace(path)
    return out, shown
