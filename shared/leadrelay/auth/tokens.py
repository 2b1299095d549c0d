"""People's bearer tokens: JWTs signed with HS256 under a key id derived from the key, verified
with the current or the previous signing key."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from pydantic import TypeAdapter

from leadrelay.auth.keys import GENERATE_HINT, AuthConfigError, key_problem
from leadrelay.rules import Duration, Person

ISSUER = "leadrelay"
AUDIENCE = "leadrelay"
ALGORITHM = "HS256"
DEFAULT_TTL = timedelta(hours=12)
MAX_TTL = timedelta(days=30)
LEEWAY = timedelta(seconds=30)


@dataclass(frozen=True)
class SigningKey:
    secret: bytes = field(repr=False)
    kid: str

    @classmethod
    def of(cls, value: str, setting: str) -> SigningKey:
        problem = key_problem(value)
        if problem:
            raise AuthConfigError(f"{setting} is {problem}: generate one, e.g. {GENERATE_HINT}")
        secret = value.encode("utf-8")
        # The key id is derived from the key, so a rotation needs no other setting.
        kid = hashlib.sha256(b"leadrelay-kid\0" + secret).hexdigest()[:16]
        return cls(secret=secret, kid=kid)


class InvalidCredential(Exception):
    """The credential is missing, malformed, expired, or signed with an unknown key: a 401."""

    def __init__(self, reason: str, error: str = "invalid_token") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class Tokens:
    """Issues and verifies the bearer tokens of people, with the current and the previous key."""

    def __init__(self, current: str, previous: str | None = None) -> None:
        self.current = SigningKey.of(current, "LEADRELAY_AUTH_SIGNING_KEY")
        self.keys = {self.current.kid: self.current}
        if previous:
            prev = SigningKey.of(previous, "LEADRELAY_AUTH_PREVIOUS_SIGNING_KEY")
            self.keys.setdefault(prev.kid, prev)

    def issue(self, person: Person, ttl: timedelta = DEFAULT_TTL, now: datetime | None = None) -> str:
        if not timedelta(0) < ttl <= MAX_TTL:
            raise ValueError(f"a token lives more than 0 and at most {MAX_TTL.days} days (got {ttl})")
        now = now or datetime.now(UTC)
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": person.id,
            "role": person.role.value,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self.current.secret, algorithm=ALGORITHM, headers={"kid": self.current.kid})

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; :class:`InvalidCredential` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidCredential("malformed token") from None
        key = self.keys.get(str(header.get("kid", "")))
        if key is None:
            raise InvalidCredential("the token is signed with a key this service does not accept (rotated out?)")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "sub", "jti", "role", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidCredential("the token has expired: get a new one") from None
        except jwt.InvalidSignatureError:
            raise InvalidCredential("the token's signature is invalid") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidCredential(f"invalid token: {type(exc).__name__}") from None
        return claims


def parse_ttl(value: str) -> timedelta:
    """``12h``, ``30m``, ``7d``, ISO 8601 or seconds; within (0, 30 days]."""
    try:
        ttl = TypeAdapter(Duration).validate_python(int(value) if value.strip().isdigit() else value)
    except ValueError:
        raise ValueError(f"not a duration: {value!r} (e.g. 12h, 30m, 7d)") from None
    if not timedelta(0) < ttl <= MAX_TTL:
        raise ValueError(f"a token lives more than 0 and at most {MAX_TTL.days} days (got {value})")
    return ttl
