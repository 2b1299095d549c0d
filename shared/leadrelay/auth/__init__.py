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

One module per job: ``keys`` (what makes a key acceptable, generating and storing one),
``tokens`` (people's JWTs), ``api_keys`` (the sources' keys), ``principals`` (the caller and
what they may see), ``authenticator`` (a credential to a principal), ``dependencies`` (what
routes declare), ``permissions`` (the roles each kind of route allows) and ``routes`` (the
app's routes checked). Import the names from ``leadrelay.auth``.
"""

# hmac is the API keys' constant-time comparison; tests spy on ``auth.hmac.compare_digest``.
import hmac  # noqa: F401

from leadrelay.auth.api_keys import (
    API_KEYS_FILE,
    ApiKeys,
    embedded_source_keys,
    source_keys_from_environment,
    split_keys,
)
from leadrelay.auth.authenticator import Authenticator
from leadrelay.auth.dependencies import PUBLIC, allow, principal, public_route
from leadrelay.auth.keys import (
    GENERATE_HINT,
    KEY_FILE,
    MIN_KEY_LENGTH,
    AuthConfigError,
    generate_key,
    key_problem,
    load_or_create_key,
)
from leadrelay.auth.permissions import (
    AVAILABILITY_SETTERS,
    DELIVERY_OPERATORS,
    EVENT_SENDERS,
    FEEDBACK_WRITERS,
    LEAD_READERS,
    METRICS_READERS,
    PEOPLE,
    SUPPRESSION_READERS,
)
from leadrelay.auth.principals import Column, Principal, scoped
from leadrelay.auth.routes import api_routes, authenticated_operations, check_routes
from leadrelay.auth.tokens import (
    ALGORITHM,
    AUDIENCE,
    DEFAULT_TTL,
    ISSUER,
    LEEWAY,
    MAX_TTL,
    InvalidCredential,
    SigningKey,
    Tokens,
    parse_ttl,
)

__all__ = [
    "ALGORITHM",
    "API_KEYS_FILE",
    "AUDIENCE",
    "AVAILABILITY_SETTERS",
    "DEFAULT_TTL",
    "DELIVERY_OPERATORS",
    "EVENT_SENDERS",
    "FEEDBACK_WRITERS",
    "GENERATE_HINT",
    "ISSUER",
    "KEY_FILE",
    "LEAD_READERS",
    "LEEWAY",
    "MAX_TTL",
    "METRICS_READERS",
    "MIN_KEY_LENGTH",
    "PEOPLE",
    "PUBLIC",
    "SUPPRESSION_READERS",
    "ApiKeys",
    "AuthConfigError",
    "Authenticator",
    "Column",
    "InvalidCredential",
    "Principal",
    "SigningKey",
    "Tokens",
    "allow",
    "api_routes",
    "authenticated_operations",
    "check_routes",
    "embedded_source_keys",
    "generate_key",
    "key_problem",
    "load_or_create_key",
    "parse_ttl",
    "principal",
    "public_route",
    "scoped",
    "source_keys_from_environment",
    "split_keys",
]
