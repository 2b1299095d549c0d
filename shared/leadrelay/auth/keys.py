"""Keys: what makes a key acceptable (long, random, no placeholder), generating one, and the
signing key an embedded run keeps in its data folder (mode 0600)."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

MIN_KEY_LENGTH = 32
KEY_FILE = "auth-signing-key"
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"

# Words and shapes of keys copied from an example instead of generated.
_PLACEHOLDER = re.compile(
    r"change.?(me|it|this)|placeholder|replace|example|sample|your.?(signing.?|api.?)?key|secret|password"
    r"|\$\{|<.*>|x{6,}",
    re.IGNORECASE,
)


class AuthConfigError(ValueError):
    """A signing key or an API key that must not be used; the message says which and why."""


def key_problem(value: str) -> str | None:
    """Why ``value`` is no acceptable key (too short, a placeholder, too uniform), or None."""
    if len(value) < MIN_KEY_LENGTH:
        return f"shorter than {MIN_KEY_LENGTH} characters"
    if _PLACEHOLDER.search(value):
        return "looks like a placeholder, not a random key"
    if len(set(value)) < 10:
        return "too few distinct characters to be random"
    return None


def generate_key() -> str:
    """A random key: 48 bytes, URL-safe base64 (64 characters)."""
    while True:
        key = secrets.token_urlsafe(48)
        if key_problem(key) is None:  # a random key spelling "secret" is refused like any other
            return key


def write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only (0600); fails if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def load_or_create_key(path: Path) -> tuple[str, bool]:
    """The key stored at ``path``, generated (mode 0600) if there is none; and whether it was new."""
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        problem = key_problem(value)
        if problem:
            raise AuthConfigError(f"the signing key in {path} is {problem}: delete the file to generate a new one")
        return value, False
    value = generate_key()
    try:
        write_private(path, value + "\n")
    except FileExistsError:  # another process generated it meanwhile
        return load_or_create_key(path)
    return value, True
