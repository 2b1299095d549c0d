"""What every form post goes through before the use case, whatever its shape (intake's own
forms, HubSpot's, Web-to-Lead's): rate limits, the honeypot and the captcha."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from intake.forms.protection import CaptchaVerifier, Limiter, dropped, honeypot_filled
from leadrelay.auth import Authenticator
from leadrelay.rules import Form
from leadrelay.settings import Settings


class Screening:
    """What every form post goes through before the use case: rate limits, honeypot, captcha.
    One per process (one of intake's resources), shared by every form route."""

    def __init__(self, settings: Settings) -> None:
        self.limiter = Limiter(settings)
        self.captcha = CaptchaVerifier(settings)

    def limit(self, request: Request, source: str) -> None:
        """429 with Retry-After when the client's address or the source is over its rate. A post
        carrying a configured source's API key (``X-API-Key``: the list import) is limited by its
        source's bucket only, not by its address."""
        key = request.headers.get("x-api-key")
        auth = getattr(request.app.state, "auth", None)
        if key and isinstance(auth, Authenticator):
            source_id = auth.api_keys.match(key)
            if source_id is not None:
                self.limiter.check_source(f"source:{source_id}")
                return
        self.limiter.check(request, source)

    async def passes(self, form: Form, fields: dict[str, Any], request: Request, remote_ip: str | None = None) -> bool:
        """False: a bot filled the honeypot (answer as accepted, drop it). Raises 422/503 for the captcha.
        The honeypot and captcha fields are removed from ``fields``."""
        if honeypot_filled(form, fields):
            dropped(form, "honeypot")
            return False
        client = request.client.host if request.client else None
        await self.captcha.check(form, fields, remote_ip or client)
        return True
