"""Who is calling: signed bearer tokens for people, API keys for machine sources, and the
FastAPI dependencies every route declares.

- **People** (the rules' reps and ``people``) send ``Authorization: Bearer <token>``. A token is
  a JWT signed with HS256 (PyJWT) whose header names the key (``kid``) and whose claims are the
  person (``sub``), their ``role``, ``iat``, ``exp`` and a token id (``jti``). Every service
  verifies tokens itself with the signing key from its settings; during a rotation the
  previous key is accepted too, and dropping it revokes every token it signed.
- **Sources** (the rules' ``sources``) send their API key as ``X-API-Key`` or as the bearer
  credential. Keys come from the environment variable each source names; two comma-separated
  keys are both valid during a rotation. Keys are compared in constant time.

A route declares who may call it with ``Depends(allow(...))`` (or ``PUBLIC``); the app refuses
to start with a route that declares neither (:func:`check_routes`). Ownership of a lead is
decided by each service from its own state, with :meth:`Principal.check_lead` and
:func:`scoped` for lists.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVarTuple

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter
from sqlalchemy import ColumnElement, Select, false
from sqlalchemy.orm import InstrumentedAttribute
from starlette.routing import BaseRoute

from leadrelay.events import Actor
from leadrelay.logging import get_logger
from leadrelay.rules import Duration, Person, Role, Rules, SourceRole
from leadrelay.settings import Settings, environment_secret

log = get_logger("leadrelay.auth")

ISSUER = "leadrelay"
AUDIENCE = "leadrelay"
ALGORITHM = "HS256"
MIN_KEY_LENGTH = 32
DEFAULT_TTL = timedelta(hours=12)
MAX_TTL = timedelta(days=30)
LEEWAY = timedelta(seconds=30)
KEY_FILE = "auth-signing-key"
API_KEYS_FILE = "api-keys.json"

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


def _write_private(path: Path, text: str) -> None:
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
        _write_private(path, value + "\n")
    except FileExistsError:  # another process generated it meanwhile
        return load_or_create_key(path)
    return value, True


# ---------------------------------------------------------------- tokens


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


GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


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


# ---------------------------------------------------------------- API keys


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
        _write_private(tmp, json.dumps(stored, indent=2) + "\n")
        tmp.replace(path)
    return out, shown


# ---------------------------------------------------------------- principals


@dataclass(frozen=True)
class Principal:
    """The caller: a person (signed in with a token) or a machine source (with its API key)."""

    kind: Literal["person", "source"]
    id: str
    role: str
    name: str
    territories: frozenset[str] = frozenset()
    email: str | None = None
    expires_at: datetime | None = None

    @property
    def actor(self) -> Actor:
        return Actor(kind=self.kind, id=self.id, role=self.role)

    @property
    def is_person(self) -> bool:
        return self.kind == "person"

    @property
    def sees_everything(self) -> bool:
        """Ops and admins see every lead; so does the CRM (it mirrors them all)."""
        if self.kind == "person":
            return self.role in (Role.OPS, Role.ADMIN)
        return self.role == SourceRole.CRM

    def may_see(self, rep_id: str | None, territory: str | None) -> bool:
        """Whether a lead owned by ``rep_id`` in ``territory`` is visible (None: no owner known)."""
        if self.sees_everything:
            return True
        if self.kind == "person" and self.role == Role.REP:
            return rep_id is not None and rep_id == self.id
        if self.kind == "person" and self.role == Role.MANAGER:
            return territory is not None and territory in self.territories
        return False

    def check_lead(self, lead_id: object, rep_id: str | None, territory: str | None) -> None:
        """403 unless the caller may see the lead. A lead the service does not know is a 403 too for
        those who see only their own (no existence oracle), and a 404 later for those who see all."""
        if not self.may_see(rep_id, territory):
            raise HTTPException(403, f"lead {lead_id} is not one of yours")

    def check_territory(self, territory: str | None, rules: Rules) -> None:
        """A list's ``territory`` filter: 403 when a rep or manager names one that is not theirs
        (naming theirs; no telling whether another exists), 422 when those who see everything name
        one the rules do not have (naming those they have), rather than an empty list for a typo."""
        if territory is None:
            return
        if not self.sees_everything:
            if territory not in self.territories:
                mine = ", ".join(sorted(self.territories)) or "none"
                raise HTTPException(403, f"territory {territory!r} is not yours (yours: {mine})")
            return
        known = [t.id for t in rules.territories]
        if territory not in known:
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["query", "territory"],
                        "msg": f"unknown territory {territory!r} (known: {', '.join(known)})",
                        "type": "value_error",
                    }
                ],
            )

    def may_act_for(self, rep_id: str, rules: Rules) -> bool:
        """Whether the caller may log a touch or a disposition in ``rep_id``'s name."""
        if self.kind == "person" and self.role == Role.REP:
            return rep_id == self.id
        if self.kind == "person" and self.role == Role.MANAGER:
            home = rules.territory_of_rep(rep_id)
            return home is not None and home.id in self.territories
        return self.sees_everything


Ts = TypeVarTuple("Ts")
Column = ColumnElement[Any] | InstrumentedAttribute[Any]


def scoped(query: Select[*Ts], who: Principal, rep: Column, territory: Column) -> Select[*Ts]:
    """``query`` restricted to the leads the caller may see: a rep their own, a manager their
    territories', ops, admins and the CRM everything."""
    if who.sees_everything:
        return query
    if who.kind == "person" and who.role == Role.REP:
        return query.where(rep == who.id)
    if who.kind == "person" and who.role == Role.MANAGER:
        return query.where(territory.in_(sorted(who.territories)))
    return query.where(false())


# ---------------------------------------------------------------- authentication


class Authenticator:
    """Turns a request's credential into a :class:`Principal`, from this service's own settings
    and rules: no call to another service."""

    def __init__(self, rules: Rules, tokens: Tokens, api_keys: ApiKeys, metrics_public: bool = False) -> None:
        self.rules = rules
        self.tokens = tokens
        self.api_keys = api_keys
        self.metrics_public = metrics_public

    @classmethod
    def from_settings(
        cls, settings: Settings, rules: Rules, source_keys: Mapping[str, Sequence[str]] | None = None
    ) -> Authenticator:
        """Raises :class:`AuthConfigError` without an acceptable signing key or with a bad API key."""
        if settings.auth_signing_key is None:
            raise AuthConfigError(f"LEADRELAY_AUTH_SIGNING_KEY is not set: generate one, e.g. {GENERATE_HINT}")
        previous = settings.auth_previous_signing_key
        tokens = Tokens(settings.auth_signing_key.get_secret_value(), previous.get_secret_value() if previous else None)
        keys = source_keys if source_keys is not None else source_keys_from_environment(rules)
        return cls(rules, tokens, ApiKeys(keys), settings.metrics_public)

    def issue(self, person_id: str, ttl: timedelta = DEFAULT_TTL) -> str:
        person = self.rules.person(person_id)
        if person is None:
            raise LookupError(f"no person {person_id!r} in the rules")
        return self.tokens.issue(person, ttl)

    def authenticate(self, bearer: str | None, api_key: str | None) -> Principal:
        if bearer and api_key:
            raise InvalidCredential("send either a bearer credential or an X-API-Key, not both", "invalid_request")
        credential = bearer or api_key
        if not credential:
            raise InvalidCredential("sign in: send Authorization: Bearer <token> (or a source's API key)", "")
        source_id = self.api_keys.match(credential)
        if source_id is not None:
            source = self.rules.source(source_id)
            if source is None:  # keys are built from the same rules
                raise InvalidCredential("unknown API key")
            return Principal(kind="source", id=source.id, role=source.role.value, name=source.name or source.id)
        if api_key or credential.count(".") != 2:
            raise InvalidCredential("unknown API key or malformed token")
        claims = self.tokens.verify(credential)
        person = self.rules.person(str(claims["sub"]))
        if person is None:
            raise InvalidCredential("the token's person is not in the rules (any more)")
        if claims["role"] != person.role.value:
            raise InvalidCredential("the person's role has changed since the token was issued: get a new one")
        return Principal(
            kind="person",
            id=person.id,
            role=person.role.value,
            name=person.name,
            territories=frozenset(person.territories),
            email=person.email,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )


# ---------------------------------------------------------------- FastAPI dependencies

_bearer = HTTPBearer(
    auto_error=False,
    description="A person's token (`leadrelay token USER_ID`) or a source's API key.",
)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="A source's API key.")


def _unauthorized(exc: InvalidCredential) -> HTTPException:
    challenge = 'Bearer realm="leadrelay"'
    if exc.error:
        challenge += f', error="{exc.error}"'
    return HTTPException(401, exc.reason, headers={"WWW-Authenticate": challenge})


async def principal(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008 - FastAPI's idiom
    api_key: str | None = Depends(_api_key),  # noqa: B008
) -> Principal:
    """The authenticated caller (401 otherwise). The credential itself is never logged."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    auth: Authenticator = request.app.state.auth
    try:
        who = auth.authenticate(bearer.credentials if bearer else None, api_key)
    except InvalidCredential as exc:
        log.info("unauthenticated", method=request.method, path=request.url.path, reason=exc.reason)
        raise _unauthorized(exc) from None
    request.state.principal = who
    return who


def allow(*roles: str) -> Callable[..., Any]:
    """A dependency: the caller if their role is one of ``roles``; 401 or 403 otherwise."""
    allowed = frozenset(str(r) for r in roles)

    async def check(who: Principal = Depends(principal)) -> Principal:  # noqa: B008
        if who.role not in allowed:
            what = "role" if who.is_person else "source role"
            raise HTTPException(403, f"your {what} ({who.role}) may not do this; allowed: {', '.join(sorted(allowed))}")
        return who

    check.__name__ = "allow_" + "_".join(sorted(allowed))
    return check


def public_route() -> None:
    """Marks a route as public on purpose (form submissions, health, the forms list)."""


PUBLIC = Depends(public_route)

# Who may do what (docs/access.md's roles table).
PEOPLE = (Role.REP, Role.MANAGER, Role.OPS, Role.ADMIN)
LEAD_READERS = (*PEOPLE, SourceRole.CRM)  # per-lead views and lead lists, filtered by ownership
FEEDBACK_WRITERS = (*PEOPLE, SourceRole.CRM)  # touches and dispositions
EVENT_SENDERS = (*PEOPLE, SourceRole.TRACKING, SourceRole.CRM)  # behaviour events
SUPPRESSION_READERS = (*PEOPLE, SourceRole.CRM)  # marketing tools read it through the CRM source
AVAILABILITY_SETTERS = (Role.MANAGER, Role.OPS, Role.ADMIN)
METRICS_READERS = (Role.OPS, Role.ADMIN, SourceRole.MONITORING)
DELIVERY_OPERATORS = (Role.OPS, Role.ADMIN)  # the notification delivery log and redelivery


def _depends_on(dependant: Dependant, targets: set[Callable[..., Any]]) -> bool:
    return any(d.call in targets or _depends_on(d, targets) for d in dependant.dependencies)


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, including those of routers included into others (FastAPI keeps an included
    router as one entry; Leadrelay's routers include theirs without a prefix)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from api_routes(nested.routes)


def authenticated_operations(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """(path, METHOD) of every route that needs a credential: it may answer 401 and 403."""
    return {
        (route.path, method)
        for route in api_routes(routes)
        if _depends_on(route.dependant, {principal})
        for method in route.methods or ()
    }


def check_routes(routes: Iterable[BaseRoute]) -> None:
    """Every API route must authenticate its caller or be marked public: raises otherwise."""
    missing = []
    for route in api_routes(routes):
        if not _depends_on(route.dependant, {principal, public_route}):
            missing.append(f"{sorted(route.methods or [])} {route.path}")
    if missing:
        raise RuntimeError("routes with neither allow(...) nor PUBLIC: " + "; ".join(missing))
