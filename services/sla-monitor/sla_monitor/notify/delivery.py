"""Sends the delivery rows: webhooks (Standard Webhooks), Slack incoming webhooks, e-mail over SMTP.

A background job of sla-monitor. It claims due rows in a short transaction
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas share the work; a claim
leases the row for a while, so a replica that dies mid-send leaves it to be
retried), sends them outside any transaction, and records each outcome in
another short one:

- 2xx: delivered.
- 408, 429, 5xx, a timeout, a refused or broken connection (SMTP: a 4xx reply):
  retried with exponential backoff and jitter (``Retry-After`` respected) until
  ``LEADRELAY_NOTIFY_RETRY_FOR_SECONDS`` (24 h) after the notification, then failed.
- any other answer (a 4xx, a redirect; SMTP: a 5xx reply): failed at once, with
  the answer, since retrying cannot help. ``POST .../redeliver`` sends it again.

Every attempt of a delivery carries the same ``webhook-id`` (e-mail: Message-ID),
so receivers can drop repeats. Each endpoint (all e-mail: the SMTP server) has
its own pool of ``LEADRELAY_NOTIFY_CONCURRENCY`` sends in flight and every send
has a timeout, so a slow or dead endpoint delays no other endpoint; and since
the rows are written by the consumers and sent here, it delays no lead either.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiosmtplib
import httpx
from prometheus_client import Counter, Gauge, Histogram
from standardwebhooks.webhooks import Webhook as Signer

from leadrelay import __version__
from leadrelay.clock import Clock, SystemClock
from leadrelay.logging import get_logger
from leadrelay.unavailable import cancel_and_wait
from sla_monitor.notify import repository
from sla_monitor.notify.domain import DELIVERED, EMAIL, FAILED, SLACK, WEBHOOK, backoff
from sla_monitor.notify.notifier import Notifier
from sla_monitor.notify.rendering import email_message, slack_message, summarize, webhook_body

if TYPE_CHECKING:
    from sla_monitor.resources import SlaContext

log = get_logger("sla_monitor.delivery")

CLAIM_BATCH = 100
ANSWER_CHARS = 300  # how much of a receiver's answer the delivery log keeps

DELIVERIES = Counter(
    "leadrelay_notification_deliveries_total",
    "Notification delivery attempts by outcome (delivered, retry, failed)",
    ["channel", "endpoint", "outcome"],
)
SEND_SECONDS = Histogram("leadrelay_notification_send_seconds", "Time of one delivery attempt", ["channel"])
QUEUE_DEPTH = Gauge("leadrelay_notification_queue_depth", "Deliveries pending (not delivered, not failed)")
QUEUE_AGE = Gauge("leadrelay_notification_queue_oldest_seconds", "Age of the oldest pending delivery")
IN_FLIGHT = Gauge("leadrelay_notification_in_flight", "Deliveries being sent now")


@dataclass(frozen=True)
class Job:
    """A claimed delivery, detached from the session."""

    id: int
    endpoint: str
    channel: str
    lane: str
    recipient: str | None
    recipient_name: str | None
    message_id: str
    type: str
    data: dict[str, Any]
    occurred_at: datetime


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retry: bool  # transient: try again later
    status: int | None = None  # HTTP status or SMTP reply code
    error: str | None = None
    retry_after: float | None = None  # seconds the receiver asked for (429, 503)


DELIVERED_OK = Outcome(delivered=True, retry=False)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


def classify(response: httpx.Response) -> Outcome:
    """An HTTP answer: 2xx delivered; 408, 429 and 5xx worth retrying; anything else final."""
    code = response.status_code
    if 200 <= code < 300:
        return Outcome(delivered=True, retry=False, status=code)
    answer = f"{code} {response.reason_phrase}: {response.text[:ANSWER_CHARS]}".rstrip(": ")
    if code in (408, 429) or code >= 500:
        return Outcome(delivered=False, retry=True, status=code, error=answer, retry_after=_retry_after(response))
    if 300 <= code < 400:
        answer += " (redirects are not followed: configure the final URL)"
    return Outcome(delivered=False, retry=False, status=code, error=answer)


def _transport_error(exc: Exception, secret_url: str | None = None) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if secret_url:
        text = text.replace(secret_url, "<url>")
    return text[:ANSWER_CHARS]


def signed_webhook(job: Job, signers: tuple[Signer, ...], sent_at: datetime) -> tuple[bytes, dict[str, str]]:
    """A Standard Webhooks request: the body and the ``webhook-*`` headers, signed with every secret."""
    body = webhook_body(job.type, job.occurred_at, job.data)
    sent_at = sent_at.astimezone(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": job.message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": " ".join(s.sign(job.message_id, sent_at, body) for s in signers),
    }
    return body.encode(), headers


class Dispatcher:
    """Claims due deliveries and sends them, at most ``concurrency`` at a time per lane (endpoint)."""

    def __init__(self, ctx: SlaContext, notifier: Notifier, wall_clock: Clock | None = None) -> None:
        self.ctx = ctx
        self.notifier = notifier
        self.settings = ctx.settings
        self.clock = ctx.clock
        # The signature's timestamp is when a request leaves, on the wall clock: receivers check it
        # against theirs (5 minutes of tolerance), whatever time the business clock says.
        self.wall_clock = wall_clock or SystemClock()
        self.concurrency = ctx.settings.notify_concurrency
        timeout = ctx.settings.notify_timeout_seconds
        self.lease = timedelta(seconds=2 * timeout + 30)
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"user-agent": f"Leadrelay/{__version__} (notifications)"},
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
        )
        self.in_flight: dict[str, int] = defaultdict(int)
        self.in_flight_ids: set[int] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._last_gauges = 0.0

    # ---- the loop

    async def run(self) -> None:
        try:
            while not self.ctx.stopping.is_set():
                claimed = 0
                try:
                    claimed = await self.claim_and_send()
                    await self.update_gauges()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("notification_claim_failed", error=repr(exc))
                if claimed:
                    continue  # more may be due, or free slots may take more
                await self._idle()
        finally:
            await self.close()

    async def _idle(self) -> None:
        wakeup = self.notifier.wakeup
        stopping = asyncio.ensure_future(self.ctx.stopping.wait())
        woken = asyncio.ensure_future(wakeup.wait())
        try:
            await asyncio.wait(
                {stopping, woken}, timeout=self.settings.notify_poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopping.cancel()
            woken.cancel()
        wakeup.clear()

    async def close(self, grace_seconds: float = 8.0) -> None:
        """Let the sends in flight finish (each has its timeout), then cancel what is left: a cancelled
        send's lease expires and it is sent again, with the same webhook-id."""
        if self.tasks:
            _done, pending = await asyncio.wait(self.tasks, timeout=grace_seconds)
            stuck = await cancel_and_wait(pending)
            if stuck:
                log.error("notification_sends_did_not_stop", sends=len(stuck))
        await self.http.aclose()

    # ---- claiming

    async def claim(self) -> list[Job]:
        """Due rows of lanes with free slots, leased for the time of a send, in one short transaction."""
        free = {lane: self.concurrency - n for lane, n in self.in_flight.items()}
        saturated = [lane for lane, n in free.items() if n <= 0]
        jobs: list[Job] = []
        # The lease is a write: the claim is a unit of work (it wakes nobody: it writes no rows to send).
        async with self.ctx.unit_of_work() as uow:
            now = uow.now
            claimed = await repository.claim_due(uow.session, now, CLAIM_BATCH, saturated, self.in_flight_ids)
            for delivery, notification in claimed:
                slots = free.get(delivery.lane, self.concurrency)
                if slots <= 0:
                    continue  # left for the next round: this lane is full
                free[delivery.lane] = slots - 1
                delivery.next_attempt_at = now + self.lease
                jobs.append(
                    Job(
                        id=delivery.id,
                        endpoint=delivery.endpoint,
                        channel=delivery.channel,
                        lane=delivery.lane,
                        recipient=delivery.recipient,
                        recipient_name=delivery.recipient_name,
                        message_id=delivery.message_id,
                        type=notification.type,
                        data=notification.data,
                        occurred_at=notification.occurred_at,
                    )
                )
        return jobs

    async def claim_and_send(self) -> int:
        jobs = await self.claim()
        for job in jobs:
            self.in_flight[job.lane] += 1
            self.in_flight_ids.add(job.id)
            IN_FLIGHT.inc()
            task = asyncio.create_task(self._deliver(job), name=f"notify:{job.endpoint}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return len(jobs)

    async def _deliver(self, job: Job) -> None:
        started = time.perf_counter()
        try:
            try:
                outcome = await self.send(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in rendering or sending: keep it retrying, and say why
                log.error("notification_send_crashed", delivery_id=job.id, endpoint=job.endpoint, error=repr(exc))
                outcome = Outcome(delivered=False, retry=True, error=f"internal error: {exc!r}"[:ANSWER_CHARS])
            SEND_SECONDS.labels(job.channel).observe(time.perf_counter() - started)
            await self.record(job, outcome)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is down: the lease expires and the row is tried again
            log.warning("notification_record_failed", delivery_id=job.id, endpoint=job.endpoint, error=repr(exc))
        finally:
            self.in_flight[job.lane] -= 1
            self.in_flight_ids.discard(job.id)
            IN_FLIGHT.dec()
            self.notifier.wake()  # a slot is free

    # ---- sending

    async def send(self, job: Job) -> Outcome:
        kind, _, name = job.endpoint.partition(":")
        if kind == WEBHOOK:
            webhook = self.notifier.webhooks.get(name)
            if webhook is None:
                return Outcome(delivered=False, retry=False, error=f"webhook {name!r} is no longer configured")
            return await self.send_webhook(job, webhook.url, webhook.signers)
        if kind == SLACK:
            slack = self.notifier.slack.get(name)
            if slack is None:
                return Outcome(delivered=False, retry=False, error=f"Slack webhook {name!r} is no longer configured")
            return await self.send_slack(job, slack.url)
        if kind == EMAIL:
            return await self.send_email(job)
        return Outcome(delivered=False, retry=False, error=f"unknown endpoint kind {kind!r}")

    async def send_webhook(self, job: Job, url: str, signers: tuple[Signer, ...]) -> Outcome:
        body, headers = signed_webhook(job, signers, self.wall_clock.now())
        return await self._post(url, body, headers, secret_url=None)

    async def send_slack(self, job: Job, url: str) -> Outcome:
        message = slack_message(summarize(job.type, job.data, self.ctx.rules))
        body = json.dumps(message, ensure_ascii=False).encode()
        return await self._post(url, body, {"content-type": "application/json"}, secret_url=url)

    async def _post(self, url: str, body: bytes, headers: dict[str, str], secret_url: str | None) -> Outcome:
        try:
            response = await self.http.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return Outcome(delivered=False, retry=True, error=f"timeout: {_transport_error(exc, secret_url)}")
        except httpx.TransportError as exc:
            return Outcome(delivered=False, retry=True, error=f"connection failed: {_transport_error(exc, secret_url)}")
        return classify(response)

    async def send_email(self, job: Job) -> Outcome:
        smtp = self.notifier.smtp
        if smtp is None:
            return Outcome(delivered=False, retry=False, error="e-mail is no longer configured")
        if not job.recipient:
            return Outcome(delivered=False, retry=False, error="no e-mail address")
        summary = summarize(job.type, job.data, self.ctx.rules, recipient=job.recipient)
        message = email_message(
            summary,
            sender=smtp.sender,
            to=job.recipient,
            to_name=job.recipient_name,
            message_id=job.message_id,
            date=self.wall_clock.now(),
        )
        try:
            await aiosmtplib.send(
                message,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=smtp.password.get_secret_value() if smtp.password is not None else None,
                use_tls=smtp.tls == "tls",
                start_tls=smtp.tls == "starttls",
                timeout=self.settings.notify_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            answer = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)[:ANSWER_CHARS]
            permanent = bool(codes) and all(code >= 500 for code in codes)
            return Outcome(delivered=False, retry=not permanent, status=codes[0] if codes else None, error=answer)
        except aiosmtplib.SMTPAuthenticationError as exc:
            # Fixing the credentials must not need a redeliver of every e-mail: keep retrying.
            return Outcome(delivered=False, retry=True, status=exc.code, error=f"authentication failed: {exc.code}")
        except aiosmtplib.SMTPResponseException as exc:
            answer = f"{exc.code} {exc.message}"[:ANSWER_CHARS]
            return Outcome(delivered=False, retry=exc.code < 500, status=exc.code, error=answer)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome(delivered=False, retry=True, error=f"SMTP: {_transport_error(exc)}")
        return DELIVERED_OK

    # ---- recording the outcome

    async def record(self, job: Job, outcome: Outcome) -> None:
        async with self.ctx.unit_of_work() as uow:
            row = await repository.delivery_for_update(uow.session, job.id)
            if row is None:
                return
            now = uow.now
            row.attempts += 1
            row.last_attempt_at = now
            row.last_status = outcome.status
            if outcome.delivered:
                row.status, row.delivered_at, row.next_attempt_at, row.last_error = DELIVERED, now, None, None
                result = "delivered"
            elif outcome.retry and now < row.retry_until:
                delay = backoff(
                    row.attempts,
                    self.settings.notify_backoff_seconds,
                    self.settings.notify_backoff_max_seconds,
                    outcome.retry_after,
                )
                row.next_attempt_at = now + timedelta(seconds=delay)
                row.last_error = outcome.error
                result = "retry"
            else:
                row.status, row.next_attempt_at = FAILED, None
                row.last_error = (
                    f"gave up after {row.attempts} attempts: {outcome.error}" if outcome.retry else outcome.error
                )
                result = "failed"
        DELIVERIES.labels(job.channel, job.lane, result).inc()
        event = {"delivered": "notification_delivered", "retry": "notification_retry", "failed": "notification_failed"}
        logger = log.info if result == "delivered" else log.warning
        logger(
            event[result],
            delivery_id=job.id,
            type=job.type,
            endpoint=job.lane if job.channel == EMAIL else job.endpoint,
            attempts=row.attempts,
            status=outcome.status,
            error=outcome.error,
            next_attempt_at=row.next_attempt_at.isoformat() if row.next_attempt_at else None,
        )

    async def update_gauges(self, every_seconds: float = 5.0) -> None:
        if time.monotonic() - self._last_gauges < every_seconds:
            return
        self._last_gauges = time.monotonic()
        async with self.ctx.database.read() as session:
            count, oldest = await repository.pending(session)
        QUEUE_DEPTH.set(count)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        QUEUE_AGE.set(max(0.0, (self.clock.now() - oldest).total_seconds()) if oldest is not None else 0.0)


async def delivery_loop(ctx: SlaContext) -> None:
    """Background job of sla-monitor: send the notifications' deliveries."""
    await Dispatcher(ctx, ctx.resources.notifier).run()
