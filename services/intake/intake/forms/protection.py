"""Intake's spam protections: rate limits (token buckets), the honeypot, the captcha.

- **Rate limits**: one token bucket per client address and one per source (the form, or
  the Web-to-Lead source), each refilled at a steady rate up to its burst
  (``LEADRELAY_FORM_RATE_*``, ``LEADRELAY_FORM_BURST_*``). A post takes a token from both;
  with none left it gets 429 and ``Retry-After`` (whole seconds until a token is back).
  The buckets live in the process: with N intake replicas behind a load balancer a
  client can get up to N times the rate (the balancer's spreading decides), which is the
  price of keeping intake free of shared state. The ``limits`` library was considered: it
  offers fixed and moving windows, not a token bucket, and a bucket is a few lines.
- **Honeypot**: a field people do not see (``forms[].honeypot``); a submission that fills
  it gets the usual 202, is dropped and counted (``leadrelay_intake_spam_dropped_total``).
- **Captcha** (``forms[].captcha``): the token field (``cf-turnstile-response`` or
  ``g-recaptcha-response``) is checked with the provider's ``siteverify`` (secret from the
  environment variable the form names). A refused or missing token is 422 on that field;
  an unreachable verifier is 503 (the client retries) unless the form says ``fail_open``.
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from fastapi import HTTPException, Request
from prometheus_client import Counter

from leadrelay.http import field_errors
from leadrelay.logging import get_logger
from leadrelay.rules import Captcha, Form
from leadrelay.settings import Settings
from leadrelay.unavailable import Unavailable

log = get_logger("intake")

SPAM_DROPPED = Counter(
    "leadrelay_intake_spam_dropped_total", "Form submissions dropped as spam (answered as accepted)", ["form", "reason"]
)
RATE_LIMITED = Counter("leadrelay_intake_rate_limited_total", "Form posts refused with 429", ["scope"])

VERIFY_URLS = {
    "turnstile": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    "recaptcha": "https://www.google.com/recaptcha/api/siteverify",
}
MAX_KEYS = 100_000  # buckets kept per scope; the least recently used go first (a full bucket is no loss)


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """Token buckets by key: ``rate`` tokens a second up to ``burst``. ``take`` answers 0 when a
    token was taken, else the seconds until one is back."""

    def __init__(self, rate: float, burst: int, now: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.now = rate, burst, now
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        now = self.now()
        bucket = self._buckets.pop(key, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self._buckets[key] = bucket
        while len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


class TooManyRequests(HTTPException):
    def __init__(self, scope: str, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            429,
            f"too many form posts from this {scope}: retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )


class Limiter:
    """The per-address and per-source buckets of one intake process."""

    def __init__(self, settings: Settings, now: Callable[[], float] = time.monotonic) -> None:
        self.address = TokenBuckets(settings.form_rate_per_address, settings.form_burst_per_address, now)
        self.source = TokenBuckets(settings.form_rate_per_source, settings.form_burst_per_source, now)

    def check(self, request: Request, source: str) -> None:
        """Take a token for the client's address and for ``source``; 429 when either is empty."""
        address = request.client.host if request.client else "unknown"
        wait = self.address.take(address)
        if wait:
            RATE_LIMITED.labels("address").inc()
            raise TooManyRequests("address", wait)
        self.check_source(source)

    def check_source(self, source: str) -> None:
        wait = self.source.take(source)
        if wait:
            RATE_LIMITED.labels("source").inc()
            raise TooManyRequests("source", wait)


def honeypot_filled(form: Form, fields: dict[str, object]) -> bool:
    """Whether the form's honeypot field came back filled (a bot); the field is removed either way."""
    if form.honeypot is None:
        return False
    value = fields.pop(form.honeypot, None)
    return value not in (None, "") and not (isinstance(value, str) and not value.strip())


def dropped(form: Form, reason: str) -> None:
    SPAM_DROPPED.labels(form.id, reason).inc()
    log.info("submission_dropped", form_id=form.id, reason=reason)


class CaptchaVerifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def url(self, captcha: Captcha) -> str:
        return self.settings.captcha_verify_url or captcha.verify_url or VERIFY_URLS[captcha.kind]

    async def check(self, form: Form, fields: dict[str, object], remote_ip: str | None) -> None:
        """Raise 422 (no or refused token) or 503 (verifier down, unless fail_open); the token field is removed."""
        captcha = form.captcha
        if captcha is None:
            return
        token = fields.pop(captcha.token_field, None)
        if not isinstance(token, str) or not token.strip():
            raise _captcha_error(captcha, "missing: solve the captcha")
        secret = os.environ.get(captcha.secret_env)
        if not secret:
            # A configuration error: say so in the log, and let the client retry later.
            log.error("captcha_secret_missing", form_id=form.id, env=captcha.secret_env)
            raise Unavailable("captcha-verifier", "siteverify unreachable", public="the captcha cannot be checked now")
        data = {"secret": secret, "response": token.strip()}
        if remote_ip:
            data["remoteip"] = remote_ip
        try:
            async with httpx.AsyncClient(timeout=self.settings.captcha_timeout) as client:
                answer = await client.post(self.url(captcha), data=data)
            answer.raise_for_status()
            result = answer.json()
            success = result.get("success") if isinstance(result, dict) else None
            if not isinstance(success, bool):
                raise ValueError(f"unexpected siteverify answer: {str(result)[:200]}")
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("captcha_verifier_unavailable", form_id=form.id, error=repr(exc), fail_open=captcha.fail_open)
            if captcha.fail_open:
                return
            raise Unavailable(
                "captcha-verifier", "siteverify unreachable", public="the captcha cannot be checked now"
            ) from exc
        if not success:
            codes = result.get("error-codes") or []
            detail = f" ({', '.join(str(c) for c in codes)})" if codes else ""
            raise _captcha_error(captcha, f"refused by the captcha verifier{detail}")


def _captcha_error(captcha: Captcha, msg: str) -> HTTPException:
    return field_errors([{"loc": ["body", captcha.token_field], "msg": msg, "type": "value_error"}])
