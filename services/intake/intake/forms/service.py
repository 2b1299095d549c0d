"""The use case of a form post (``POST /v1/forms/{form_id}/submissions``, JSON or a plain HTML
form): screen it, read its fields, and accept the form submission they make.

Whatever stops a post is raised as one error, :class:`Refused`, carrying its cause and the fields
read before it, so the route maps every refusal in one place (to JSON, or to a page for a browser).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from intake.forms.screening import Screening
from intake.service import Accepted, Intake
from leadrelay.rules import Form


class Refused(Exception):
    """A form post that was not accepted. ``cause`` says why: the rate limit
    (:class:`intake.forms.protection.TooManyRequests`), a body that is not a form's fields or a
    missing or refused captcha (an ``HTTPException``), a captcha that cannot be checked
    (:class:`leadrelay.unavailable.Unavailable`), or the use case's
    :class:`intake.service.Invalid`, :class:`intake.service.NotStored`,
    :class:`intake.service.UnknownForm`. ``fields``: what the post carried, None when its body
    was not read."""

    def __init__(self, cause: Exception, fields: dict[str, Any] | None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fields = fields


@dataclass(frozen=True)
class Submitted:
    """An accepted post: its answer, and its fields. ``kept`` is False for a bot caught by the
    honeypot, which gets the usual answer (a lead id as a real one would get) and nothing is kept."""

    accepted: Accepted
    fields: dict[str, Any]
    kept: bool


class FormPosts:
    """Form posts, through the screening (rate limits, honeypot, captcha) into the use case."""

    def __init__(self, intake: Intake, screening: Screening) -> None:
        self.intake = intake
        self.screening = screening

    async def submit(
        self,
        form: Form,
        request: Request,
        read_fields: Callable[[], Awaitable[dict[str, Any]]],
        client_key: str | None,
    ) -> Submitted:
        """The post's rate is checked before its body is read (``read_fields``); then the honeypot
        and the captcha, then the form submission is accepted. Raises :class:`Refused`."""
        try:
            self.screening.limit(request, f"form:{form.id}")  # 429 with Retry-After
            fields = await read_fields()
        except Exception as exc:
            raise Refused(exc, None) from exc
        try:
            if not await self.screening.passes(form, fields, request):
                decoy = Accepted(lead_id=self.intake.decoy_lead_id(fields), event_id=str(uuid.uuid4()))
                return Submitted(decoy, fields, kept=False)
            accepted = await self.intake.accept(self.intake.form_submission(form.id, fields, client_key))
        except Exception as exc:
            raise Refused(exc, fields) from exc
        return Submitted(accepted, fields, kept=True)
