"""The FastAPI dependencies a route declares: ``Depends(allow(...))`` for who may call it, or
``PUBLIC``; :func:`principal` is the authenticated caller (401 otherwise)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from leadrelay.auth.authenticator import Authenticator
from leadrelay.auth.principals import Principal
from leadrelay.auth.tokens import InvalidCredential
from leadrelay.logging import get_logger

log = get_logger("leadrelay.auth")

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
