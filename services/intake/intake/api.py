"""Intake's behaviour-event route, ``POST /v1/events``: an event of a lead known by email or lead id,
from a tracking client (its source's API key) or a signed-in person.

The route parses the request, calls the use case (``intake.service.Intake.activity``, then
``accept``) and maps its errors. The form routes are in ``intake.forms.api``, the other tools' ways
in (HubSpot, Web-to-Lead, Segment and RudderStack) in ``intake.connectors``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from intake.domain import normalise_email
from intake.forms.bodies import read_json
from intake.schema import Accepted, event_body
from intake.service import Invalid, NotStored, UnknownForm, unavailable
from leadrelay.auth import EVENT_SENDERS, Principal, allow
from leadrelay.contract import AwareDateTime
from leadrelay.events import ActivityType
from leadrelay.http import field_errors
from leadrelay.inputs import Text

if TYPE_CHECKING:
    from intake.resources import IntakeContext


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


def build_router(ctx: IntakeContext) -> APIRouter:
    router = APIRouter(tags=["intake"])
    intake = ctx.resources.intake

    @router.post("/v1/events", status_code=202, response_model=Accepted, openapi_extra=event_body(ActivityIn))
    async def record_event(
        request: Request,
        who: Annotated[Principal, Depends(allow(*EVENT_SENDERS))],
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Accepted:
        """A behaviour event from a tracking client (its source's API key) or a signed-in person."""
        body = await read_json(request)
        try:
            activity = ActivityIn.model_validate(body)
        except ValidationError as exc:
            raise field_errors(
                [
                    {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors(include_url=False)
                ]
            ) from None
        try:
            accepted = await intake.accept(
                intake.activity(
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
        except UnknownForm as exc:
            raise HTTPException(404, str(exc)) from None
        except Invalid as exc:
            raise field_errors(exc.errors) from None
        except NotStored as exc:
            raise unavailable(exc) from exc
        return Accepted(lead_id=accepted.lead_id, event_id=accepted.event_id)

    return router
