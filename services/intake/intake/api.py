"""Intake's HTTP routes: the front door for website forms and tracking clients.

Intake keeps no state of its own: the lead id is derived from the address, and
a client's retry key gives a stable event id, so retries are deduplicated by
every consumer's inbox. It answers 202 only once the broker acknowledged the
event; if the broker cannot, it answers 503 and the client retries.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from intake.domain import lead_id_for, normalise_email, normalise_submission
from intake.schema import SUBMISSION_BODY, event_body
from leadrelay.contract import AwareDateTime, FormId
from leadrelay.events import ActivityRecorded, ActivityType, FormSubmitted
from leadrelay.http import ServiceUnavailable, field_errors
from leadrelay.logging import get_logger
from leadrelay.service import ServiceContext

log = get_logger("intake")
# Longer than the producer's own delivery timeout (30 s): a 503 then means the event was not stored.
PUBLISH_TIMEOUT = 35.0


class Accepted(BaseModel):
    lead_id: str
    event_id: str


class ActivityIn(BaseModel):
    """A behaviour event for a lead known by email or lead id."""

    model_config = ConfigDict(extra="forbid")

    type: ActivityType
    email: str | None = None
    lead_id: uuid.UUID | None = None
    url: str | None = Field(default=None, max_length=2000)
    occurred_at: AwareDateTime | None = Field(default=None, description="default: when intake receives it")
    properties: dict[str, str] = Field(default_factory=dict, max_length=50)
    message_id: str | None = Field(default=None, max_length=200, description="the client's id, for deduplication")

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
    namespace = uuid.UUID(ctx.settings.lead_id_namespace)

    def event_id(scope: str, client_key: str | None) -> str:
        return str(uuid.uuid5(namespace, f"{scope}:{client_key}")) if client_key else str(uuid.uuid4())

    async def publish(data: Any, eid: str) -> None:
        envelope = ctx.envelope(data, event_id=eid)
        try:
            await asyncio.wait_for(ctx.bus.publish([envelope.to_record()]), timeout=PUBLISH_TIMEOUT)
        except Exception as exc:
            log.error("publish_failed", lead_id=envelope.subject, event_id=eid, error=repr(exc))
            raise ServiceUnavailable("the event could not be stored; retry later") from exc
        log.info("event_accepted", lead_id=envelope.subject, event_id=eid, type=envelope.type)

    @router.get("/v1/forms")
    async def list_forms() -> list[dict[str, Any]]:
        return [f.model_dump() for f in ctx.rules.forms]

    @router.post(
        "/v1/forms/{form_id}/submissions", status_code=202, response_model=Accepted, openapi_extra=SUBMISSION_BODY
    )
    async def submit_form(
        form_id: FormId,
        request: Request,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Accepted:
        form = ctx.rules.form(form_id)
        if form is None:
            known = ", ".join(f.id for f in ctx.rules.forms)
            raise HTTPException(404, f"unknown form {form_id!r}; known forms: {known}")
        fields = await _read_fields(request)
        result = normalise_submission(fields)
        if result.contact is None:
            raise field_errors(result.errors)
        lead_id = lead_id_for(result.contact.email, namespace)
        eid = event_id(f"form:{form_id}", idempotency_key)
        await publish(
            FormSubmitted(
                lead_id=lead_id,
                form_id=form_id,
                submitted_at=ctx.clock.now(),
                contact=result.contact,
                custom=result.custom,
                page_url=result.page_url,
            ),
            eid,
        )
        return Accepted(lead_id=lead_id, event_id=eid)

    @router.post("/v1/events", status_code=202, response_model=Accepted, openapi_extra=event_body(ActivityIn))
    async def record_event(
        request: Request,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Accepted:
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
        now = ctx.clock.now()
        if activity.occurred_at is not None and activity.occurred_at > now + timedelta(minutes=5):
            raise field_errors([{"loc": ["body", "occurred_at"], "msg": "in the future", "type": "value_error"}])
        lead_id = lead_id_for(activity.email, namespace) if activity.email else str(activity.lead_id)
        if activity.email and activity.lead_id and str(activity.lead_id) != lead_id:
            raise field_errors(
                [{"loc": ["body", "lead_id"], "msg": "does not belong to this email", "type": "value_error"}]
            )
        eid = event_id("event", activity.message_id or idempotency_key)
        await publish(
            ActivityRecorded(
                lead_id=lead_id,
                email=activity.email,
                activity=activity.type,
                occurred_at=activity.occurred_at or now,
                url=activity.url,
                properties=activity.properties,
            ),
            eid,
        )
        return Accepted(lead_id=lead_id, event_id=eid)

    return router


async def _read_json(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        raise HTTPException(415, f"expected application/json, got {ctype}")
    try:
        return await request.json()
    except ValueError as exc:
        raise field_errors([{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}]) from None


async def _read_fields(request: Request) -> dict[str, Any]:
    """A JSON object of fields, or a form as a plain HTML form posts it."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    body = await _read_json(request)
    if not isinstance(body, dict):
        raise field_errors([{"loc": ["body"], "msg": "expected a JSON object of fields", "type": "type_error"}])
    return body
