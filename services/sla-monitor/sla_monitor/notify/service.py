"""The notifications' use cases: decide who hears of a handoff, a warning, a breach or a recycled
lead, in the transaction that handles its cause; and send a delivery again.

A notification is decided in the unit of work that handles its cause (an
assignment or a disposition from the bus, a warning or a breach claimed by the
timer): one ``notifications`` row, unique per cause, and one ``deliveries`` row
per endpoint, committed with the state change or not at all, like an outbox;
the unit of work wakes the delivery job (:mod:`sla_monitor.notify.delivery`)
once it has committed. Who the lead is comes from its latest assignment, the
queue's row (``sla_monitor.models.QueuedLead``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from leadrelay.events import Contact, DispositionRecorded, LeadAssigned
from leadrelay.logging import get_logger
from leadrelay.rules import NotificationType
from leadrelay.unit_of_work import UnitOfWork
from sla_monitor.models import Delivery, Notification, QueuedLead, SlaClock
from sla_monitor.notify import repository
from sla_monitor.notify.domain import (
    EMAIL,
    PENDING,
    RECYCLING,
    SLACK,
    WEBHOOK,
    LeadAssignedData,
    LeadRecycledData,
    Payload,
    PersonRef,
    Recipient,
    SlaBreachedData,
    SlaWarningData,
    message_id,
    of_cycle,
)
from sla_monitor.notify.notifier import Notifier
from sla_monitor.queue.repository import queued_of

if TYPE_CHECKING:
    from sla_monitor.resources import SlaContext

log = get_logger("sla_monitor.notifications")


def notify(
    notifier: Notifier,
    uow: UnitOfWork,
    type_: NotificationType,
    key: str,
    data: Payload,
    occurred_at: datetime,
    territory: str | None,
    recipients: Iterable[Recipient],
) -> int:
    """Write the notification and one delivery per endpoint in the caller's unit of work; returns
    how many deliveries (none: nobody is configured to hear of it, and nothing is written)."""
    targets = notifier.targets(type_, territory, recipients)
    if not targets:
        return 0
    lead_id = str(getattr(data, "lead_id", ""))
    uow.session.add(
        Notification(
            key=key,
            type=type_.value,
            lead_id=lead_id,
            data=data.model_dump(mode="json"),
            occurred_at=occurred_at,
            created_at=uow.now,
            deliveries=[
                Delivery(
                    endpoint=t.endpoint,
                    channel=t.channel,
                    lane=t.lane,
                    recipient=t.recipient,
                    recipient_name=t.recipient_name,
                    message_id=message_id(key, t.endpoint),
                    status=PENDING,
                    attempts=0,
                    created_at=uow.now,
                    next_attempt_at=uow.now,
                    retry_until=uow.now + notifier.retry_for,
                )
                for t in targets
            ],
        )
    )
    uow.wake_after_commit(notifier.wake)
    log.info("notification_created", type=type_.value, lead_id=lead_id, deliveries=len(targets))
    return len(targets)


def _handed_off(row: QueuedLead | None) -> QueuedLead | None:
    """The lead's latest assignment if the notifications know who the lead is (its contact): not for
    an assignment made before they existed."""
    return row if row is not None and row.contact is not None else None


def _contact(row: QueuedLead | None) -> Contact | None:
    return Contact.model_validate(row.contact) if row is not None and row.contact is not None else None


def _of_clock(row: QueuedLead | None, clock: SlaClock) -> QueuedLead | None:
    """The handoff of the clock's own cycle (a newer cycle's contact would be a different handoff)."""
    row = _handed_off(row)
    return row if row is not None and of_cycle(row.cycle, clock.cycle) else None


def lead_assigned(
    notifier: Notifier, uow: UnitOfWork, event: LeadAssigned, deadlines: dict[str, datetime], first: bool
) -> None:
    """Tell the rep of the assignment (once per lead and cycle: ``first``, the cycle's clocks are new)."""
    if not first:
        return  # the clocks of this cycle existed already: so did its notification
    data = LeadAssignedData(
        lead_id=event.lead_id,
        cycle=event.cycle,
        link=notifier.link(event.lead_id),
        rep=notifier.person_ref(event.rep_id),
        territory=event.territory,
        assigned_at=event.assigned_at,
        deadlines=deadlines,
        handoff=event.handoff,
    )
    notify(
        notifier,
        uow,
        NotificationType.LEAD_ASSIGNED,
        f"lead.assigned:{event.lead_id}:{event.cycle}",
        data,
        event.assigned_at,
        event.territory,
        notifier.recipient(event.rep_id),
    )


def disposition_recorded(
    notifier: Notifier, uow: UnitOfWork, rows: dict[str, QueuedLead], data: DispositionRecorded
) -> None:
    """Tell marketing of a lead sales sent back (recycle, unreachable), with the reason (``rows``: the
    batch's latest assignments, see ``sla_monitor.queue.repository.queued_of``)."""
    if data.disposition not in RECYCLING:
        return
    row = _handed_off(rows.get(data.lead_id))
    payload = LeadRecycledData(
        lead_id=data.lead_id,
        cycle=row.cycle if row is not None else None,
        link=notifier.link(data.lead_id),
        disposition=data.disposition.value,
        reason=data.reason,
        rep=notifier.person_ref(data.rep_id),
        territory=row.territory if row is not None else None,
        recorded_at=data.recorded_at,
        contact=_contact(row),
    )
    notify(
        notifier,
        uow,
        NotificationType.LEAD_RECYCLED,
        f"lead.recycled:{data.lead_id}:{data.recorded_at.isoformat()}",
        payload,
        data.recorded_at,
        payload.territory,
        notifier.marketing,
    )


async def breached(notifier: Notifier, uow: UnitOfWork, clocks: list[SlaClock]) -> None:
    """Tell the rep and the territory's managers of each breach (called in the breach's unit of work)."""
    if not clocks or not notifier.hears(NotificationType.SLA_BREACHED):
        return
    rows = await queued_of(uow.session, list({c.lead_id for c in clocks}))
    for clock in clocks:
        row = _of_clock(rows.get(clock.lead_id), clock)
        managers = notifier.rules.managers_of(clock.territory)
        data = SlaBreachedData(
            lead_id=clock.lead_id,
            cycle=clock.cycle,
            link=notifier.link(clock.lead_id),
            clock=clock.name,
            due_at=clock.due_at,
            breached_at=uow.now,
            rep=notifier.person_ref(clock.rep_id),
            territory=clock.territory,
            managers=[PersonRef(id=m.id, name=m.name, email=m.email) for m in managers],
            qualification=row.qualification if row is not None else None,
            contact=_contact(row),
        )
        notify(
            notifier,
            uow,
            NotificationType.SLA_BREACHED,
            f"sla.breached:{clock.lead_id}:{clock.cycle}:{clock.name}",
            data,
            uow.now,
            clock.territory,
            notifier.recipient(clock.rep_id) + [Recipient.of(m) for m in managers],
        )


async def warned(notifier: Notifier, uow: UnitOfWork, clocks: list[SlaClock]) -> None:
    """Tell the rep of each deadline coming (called in the unit of work that marks the clocks warned)."""
    if not clocks or not notifier.hears(NotificationType.SLA_WARNING):
        return
    rows = await queued_of(uow.session, list({c.lead_id for c in clocks}))
    for clock in clocks:
        row = _of_clock(rows.get(clock.lead_id), clock)
        data = SlaWarningData(
            lead_id=clock.lead_id,
            cycle=clock.cycle,
            link=notifier.link(clock.lead_id),
            clock=clock.name,
            due_at=clock.due_at,
            warned_at=uow.now,
            rep=notifier.person_ref(clock.rep_id),
            territory=clock.territory,
            qualification=row.qualification if row is not None else None,
            contact=_contact(row),
        )
        notify(
            notifier,
            uow,
            NotificationType.SLA_WARNING,
            f"sla.warning:{clock.lead_id}:{clock.cycle}:{clock.name}",
            data,
            uow.now,
            clock.territory,
            notifier.recipient(clock.rep_id),
        )


class DeliveryNotFound(LookupError):
    pass


class EndpointNotConfigured(Exception):
    """The delivery's endpoint is no longer in the rules (or e-mail is off): sending again cannot work."""


def configured(notifier: Notifier, endpoint: str) -> bool:
    kind, _, name = endpoint.partition(":")
    return {
        WEBHOOK: name in notifier.webhooks,
        SLACK: name in notifier.slack,
        EMAIL: notifier.smtp is not None,
    }.get(kind, False)


async def redeliver(ctx: SlaContext, delivery_id: int) -> tuple[Delivery, Notification]:
    """Reset a delivery to pending now, retrying for a fresh window (the same webhook-id); the delivery
    job is woken once it is committed."""
    notifier = ctx.resources.notifier
    async with ctx.unit_of_work() as uow:
        d = await repository.delivery_for_update(uow.session, delivery_id)
        if d is None:
            raise DeliveryNotFound(f"delivery {delivery_id} not found")
        if not configured(notifier, d.endpoint):
            kind, _, name = d.endpoint.partition(":")
            raise EndpointNotConfigured(
                f"the endpoint {kind}:{name} is no longer configured" if kind != EMAIL else "e-mail is not configured"
            )
        d.status = PENDING
        d.next_attempt_at = uow.now
        d.retry_until = uow.now + notifier.retry_for
        n = await repository.notification(uow.session, d.notification_id)
        assert n is not None
        uow.wake_after_commit(notifier.wake)
    return d, n
