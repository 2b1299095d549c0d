"""Intake's HTTP routes: the front door for website forms and tracking clients.

The routes parse the request and call the use cases in ``intake.service``. A
202 means the event is stored: acknowledged by the broker, or in intake's spool
while the broker is down or slow; if neither can store it, 503 and the client
retries.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from intake.domain import normalise_email
from intake.schema import SUBMISSION_BODY, event_body
from intake.service import Intake, Invalid, NotStored, UnknownForm
from intake.spool import spool_of
from leadrelay.auth import EVENT_SENDERS, PUBLIC, Principal, allow
from leadrelay.contract import AwareDateTime, FormId
from leadrelay.events import ActivityType, Envelope
from leadrelay.http import field_errors
from leadrelay.inputs import Text
from leadrelay.runtime import ServiceContext
from leadrelay.unavailable import Unavailable


class Accepted(BaseModel):
    lead_id: str
    event_id: str


class ActivityIn(BaseModel):
    """A behaviour event for a lead known by email or lead id."""

    model_config = ConfigDict(extra="forbid")

    type: ActivityType
    email: Text | None = None
    lead_id: uuid.UUID | None = None
    url: Text | None = Field(default=None, max_length=2000)
    occurred_at: AwareDateTime | None = Field(default=None, description="default: when intake receives it")
    properties: dict[Annotated[Text, Field(max_length=100)], Annotated[Text, Field(max_length=1000)]] = Field(
        default_factory=dict, max_length=50
    )
    message_id: Text | None = Field(default=None, max_length=200, description="the client's id, for deduplication")

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return normalise_email(v)
        except Exception as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _who(self) -> ActivityIn:
        if self.email is None and self.lead_id is None:
            raise ValueError("give the lead's email or lead_id")
        return self


def build_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["intake"])
    settings = ctx.settings
    intake = Intake(
        ctx.rules,
        uuid.UUID(settings.lead_id_namespace),
        ctx.clock,
        ctx.bus,
        spool=spool_of(ctx),
        always_spool=settings.intake_spool == "always",
        direct_timeout=settings.intake_direct_timeout_ms / 1000,
    )

    async def accept(build: Callable[[], Envelope]) -> Accepted:
        try:
            accepted = await intake.accept(build())
        except UnknownForm as exc:
            raise HTTPException(404, str(exc)) from None
        except Invalid as exc:
            raise field_errors(exc.errors) from None
        except NotStored as exc:
            raise Unavailable(
                exc.dependency, repr(exc.__cause__), public=str(exc).removesuffix("; retry later")
            ) from exc
        return Accepted(lead_id=accepted.lead_id, event_id=accepted.event_id)

    # Public: a website form cannot keep a secret.
    @router.get("/v1/forms", dependencies=[PUBLIC])
    async def list_forms() -> list[dict[str, Any]]:
        return [f.model_dump() for f in ctx.rules.forms]

    @router.post(
        "/v1/forms/{form_id}/submissions",
        status_code=202,
        response_model=Accepted,
        dependencies=[PUBLIC],
        openapi_extra=SUBMISSION_BODY,
    )
    async def submit_form(
        form_id: FormId,
        request: Request,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Accepted:
        if ctx.rules.form(form_id) is None:  # before reading a body meant for no form
            raise HTTPException(404, str(UnknownForm(form_id, [f.id for f in ctx.rules.forms])))
        fields = await _read_fields(request, ctx.settings.max_form_fields)
        return await accept(lambda: intake.form_submission(form_id, fields, idempotency_key))

    @router.post("/v1/events", status_code=202, response_model=Accepted, openapi_extra=event_body(ActivityIn))
    async def record_event(
        request: Request,
        who: Annotated[Principal, Depends(allow(*EVENT_SENDERS))],
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Accepted:
        """A behaviour event from a tracking client (its source's API key) or a signed-in person."""
        body = await _read_json(request)
        try:
            activity = ActivityIn.model_validate(body)
        except ValidationError as exc:
            raise field_errors(
                [
                    {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors(include_url=False)
                ]
            ) from None
        return await accept(
            lambda: intake.activity(
                activity.type,
                email=activity.email,
                lead_id=activity.lead_id,
                occurred_at=activity.occurred_at,
                url=activity.url,
                properties=activity.properties,
                client_key=activity.message_id or idempotency_key,
                actor=who.actor,
            )
        )

    return router


async def _read_json(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        raise HTTPException(415, f"expected application/json, got {ctype}")
    try:
        return await request.json()
    except ValueError as exc:
        raise field_errors([{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}]) from None


async def _read_fields(request: Request, max_fields: int) -> dict[str, Any]:
    """A JSON object of fields, or a form as a plain HTML form posts it; at most ``max_fields`` of them."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form(max_fields=max_fields)
        except StarletteHTTPException as exc:
            # The form parser's refusals (too many fields or files, a part too large) are the body's fault.
            raise field_errors([{"loc": ["body"], "msg": str(exc.detail), "type": "value_error"}]) from None
        return {k: v for k, v in form.items() if isinstance(v, str)}
    body = await _read_json(request)
    if not isinstance(body, dict):
        raise field_errors([{"loc": ["body"], "msg": "expected a JSON object of fields", "type": "type_error"}])
    if len(body) > max_fields:
        raise field_errors([{"loc": ["body"], "msg": f"more than {max_fields} fields", "type": "too_long"}])
    return body
