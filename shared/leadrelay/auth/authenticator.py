"""Authentication: a request's credential (a token or an API key) turned into a :class:`Principal`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from leadrelay.auth.api_keys import ApiKeys, source_keys_from_environment
from leadrelay.auth.keys import GENERATE_HINT, AuthConfigError
from leadrelay.auth.principals import Principal
from leadrelay.auth.tokens import DEFAULT_TTL, InvalidCredential, Tokens
from leadrelay.rules import Rules
from leadrelay.settings import Settings


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
