"""The delivery log ops watches, and the redeliver action.

``GET /v1/notifications/deliveries?status=failed`` lists deliveries newest
first; ``GET .../{id}`` adds what was sent; ``POST .../{id}/redeliver`` sends a
delivery again (delivered or failed: the receiver lost it, or the endpoint is
fixed), with the same ``webhook-id`` and a fresh retry window. Slack URLs and
webhook secrets never appear here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel

from leadrelay.auth import DELIVERY_OPERATORS, Principal, allow
from leadrelay.inputs import Text
from leadrelay.logging import get_logger
from sla_monitor.models import Delivery, Notification
from sla_monitor.notify import repository, service

if TYPE_CHECKING:
    from sla_monitor.resources import SlaContext

log = get_logger("sla_monitor.notifications")

Status = Literal["pending", "delivered", "failed"]


class DeliveryOut(BaseModel):
    id: int
    type: str
    lead_id: str
    endpoint: str
    channel: str
    recipient: str | None
    webhook_id: str
    status: Status
    attempts: int
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    retry_until: datetime
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None


class DeliveryDetail(DeliveryOut):
    occurred_at: datetime
    data: dict[str, Any]


def _out(d: Delivery, n: Notification) -> dict[str, Any]:
    return {
        "id": d.id,
        "type": n.type,
        "lead_id": n.lead_id,
        "endpoint": d.endpoint,
        "channel": d.channel,
        "recipient": d.recipient,
        "webhook_id": d.message_id,
        "status": d.status,
        "attempts": d.attempts,
        "created_at": d.created_at,
        "last_attempt_at": d.last_attempt_at,
        "next_attempt_at": d.next_attempt_at,
        "retry_until": d.retry_until,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "delivered_at": d.delivered_at,
    }


DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def build_notifications_router(ctx: SlaContext) -> APIRouter:
    router = APIRouter(tags=["notifications"])
    ops = Depends(allow(*DELIVERY_OPERATORS))  # the delivery log is for ops and admins

    @router.get("/v1/notifications/deliveries", response_model=list[DeliveryOut], dependencies=[ops])
    async def deliveries(
        status: Annotated[Status | None, Query(description="pending, delivered or failed")] = None,
        endpoint: Annotated[
            Text | None, Query(max_length=400, description="e.g. webhook:crm, slack:nordics, email:someone@...")
        ] = None,
        lead_id: Annotated[Text | None, Query(max_length=64)] = None,
        before: Annotated[
            int | None, Query(ge=1, le=2**63 - 1, description="only deliveries with a smaller id (paging)")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """The delivery log, newest first."""
        async with ctx.database.read() as session:
            found = await repository.deliveries(session, status, endpoint, lead_id, before, limit)
        return [_out(d, n) for d, n in found]

    async def _load(delivery_id: int) -> tuple[Delivery, Notification]:
        async with ctx.database.read() as session:
            row = await repository.delivery(session, delivery_id)
        if row is None:
            raise HTTPException(404, f"delivery {delivery_id} not found")
        return row[0], row[1]

    @router.get("/v1/notifications/deliveries/{delivery_id}", response_model=DeliveryDetail, dependencies=[ops])
    async def delivery(delivery_id: DeliveryId) -> dict[str, Any]:
        """One delivery, with the notification's data (the webhook body's ``data``)."""
        d, n = await _load(delivery_id)
        return {**_out(d, n), "occurred_at": n.occurred_at, "data": n.data}

    @router.post(
        "/v1/notifications/deliveries/{delivery_id}/redeliver",
        response_model=DeliveryOut,
        status_code=202,
    )
    async def redeliver(
        delivery_id: DeliveryId,
        who: Principal = Depends(allow(*DELIVERY_OPERATORS)),  # noqa: B008 - FastAPI's idiom
    ) -> dict[str, Any]:
        """Send the delivery again now (same webhook-id), retrying for a fresh window if it fails."""
        try:
            d, n = await service.redeliver(ctx, delivery_id)
        except service.DeliveryNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except service.EndpointNotConfigured as exc:
            raise HTTPException(409, str(exc)) from exc
        out = _out(d, n)
        # The audit trail: who sent what again (the delivery log keeps no history of its own).
        log.info(
            "redelivery_requested",
            delivery_id=delivery_id,
            endpoint=out["endpoint"],
            lead_id=out["lead_id"],
            by=who.id,
            role=who.role,
        )
        return out

    return router
