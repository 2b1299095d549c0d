"""The console's session cookie, its CSRF tokens and the headers of every page.

- **Session**: the person's bearer token, in an ``HttpOnly``, ``SameSite=Lax`` cookie that is
  ``Secure`` unless the console is reached on a loopback address (plain http on one's own
  machine); it expires with the token. The console keeps no session state: the services verify
  the token on every call.
- **CSRF**: every form that changes something carries a token, signed with the console's secret
  key (itsdangerous, HMAC-SHA256), binding a random per-browser value (the ``lr_csrf`` cookie:
  the double submit) and the session (a hash of the token); it is checked in constant time
  and expires after :data:`CSRF_MAX_AGE`. htmx sends it as ``X-CSRF-Token``.
- **Headers**: a Content Security Policy with no inline script (scripts come only from the
  console's own static files), no framing, no referrer (the sign-in link carries a token).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping, MutableMapping

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "lr_session"
CSRF_COOKIE = "lr_csrf"
LANG_COOKIE = "lr_lang"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_MAX_AGE = 12 * 3600
YEAR = 365 * 24 * 3600

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def secure_headers(headers: MutableMapping[str, str], private: bool = True) -> None:
    """The security headers; ``private`` pages (personal data) are never stored by caches."""
    headers.update(SECURITY_HEADERS)
    if private:
        headers["Cache-Control"] = "no-store"


def is_loopback(request: Request) -> bool:
    """Whether the browser reached the console on a loopback address (its own machine)."""
    host = (request.url.hostname or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cookie_secure(request: Request) -> bool:
    """``Secure`` everywhere but on one's own machine over plain http (`make run`)."""
    return request.url.scheme == "https" or not is_loopback(request)


def set_session(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max(max_age, 0),
        httponly=True,
        secure=cookie_secure(request),
        samesite="lax",
        path="/",
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, secure=cookie_secure(request), samesite="lax")


def set_language(response: Response, request: Request, lang: str) -> None:
    response.set_cookie(
        LANG_COOKIE, lang, max_age=YEAR, httponly=True, secure=cookie_secure(request), samesite="lax", path="/"
    )


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


class Csrf:
    """Signed double-submit tokens tied to the browser and to the session."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="leadrelay-console-csrf")

    @staticmethod
    def browser_nonce(request: Request) -> tuple[str, bool]:
        """The browser's random CSRF value, and whether it is new (then it must be set as a cookie)."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if len(nonce) >= 32:
            return nonce, False
        return secrets.token_urlsafe(32), True

    @staticmethod
    def set_nonce(response: Response, request: Request, nonce: str) -> None:
        response.set_cookie(
            CSRF_COOKIE, nonce, max_age=YEAR, httponly=True, secure=cookie_secure(request), samesite="strict", path="/"
        )

    def token(self, nonce: str, session: str | None) -> str:
        return self._serializer.dumps([_digest(nonce), _digest(session or "")])

    def valid(self, presented: str | None, cookies: Mapping[str, str]) -> bool:
        """Whether ``presented`` was issued to this browser for its current session, recently."""
        if not presented:
            return False
        try:
            claimed = self._serializer.loads(presented, max_age=CSRF_MAX_AGE)
        except BadSignature:  # also SignatureExpired
            return False
        if not (isinstance(claimed, list) and len(claimed) == 2 and all(isinstance(x, str) for x in claimed)):
            return False
        nonce = cookies.get(CSRF_COOKIE, "")
        session = cookies.get(SESSION_COOKIE, "")
        if not nonce:
            return False
        expected = _digest(nonce) + ":" + _digest(session)
        return hmac.compare_digest(expected, f"{claimed[0]}:{claimed[1]}")


def safe_next(value: str | None, default: str = "/") -> str:
    """A local path to go back to after a form (never another site: no scheme, no //host)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value
