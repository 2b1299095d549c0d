"""Live updates: server-sent events, fed by polling the services' APIs with the viewer's token.

Each open page holds one stream. Every ``poll_seconds`` (1 s by default) the console asks the
service for what the page shows (the queue: ``GET /v1/me/leads``; the alert feed:
``GET /v1/alerts?since=``) and sends the re-rendered part only when it changed. Polling with the
person's own token keeps every permission check in the services and the console stateless; a
consumer of the topics would have had to re-implement who may see which lead. The cost is one
small indexed read per open page per second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from console import views
from console.services import Names, Unavailable

if TYPE_CHECKING:
    from console.app import Console

HEARTBEAT_SECONDS = 15.0
# Alerts are asked for from a little before the newest one seen (a transaction that committed
# late may carry an earlier time), and those already sent are skipped by their key.
ALERT_OVERLAP = timedelta(seconds=60)


def event(name: str, data: str) -> bytes:
    lines = data.splitlines() or [""]
    return (f"event: {name}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode("utf-8")


async def until_gone(console: Console, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The stream, with a heartbeat, until the server shuts down (the client going away cancels it)."""
    yield b"retry: 1000\n\n"
    last = time.monotonic()
    async for chunk in events:
        if console.should_exit():
            return
        if chunk:
            yield chunk
            last = time.monotonic()
        elif time.monotonic() - last > HEARTBEAT_SECONDS:
            yield b": keep-alive\n\n"
            last = time.monotonic()


async def _ticks(console: Console) -> AsyncIterator[None]:
    while not console.should_exit():
        yield None
        await asyncio.sleep(console.poll_seconds)


async def queue(console: Console, token: str, lang: str, filters: Mapping[str, str]) -> AsyncIterator[bytes]:
    """The queue list, re-sent whenever a lead arrives, leaves or changes stage or deadline."""
    signature: str | None = None
    known: Names | None = None
    async for _ in _ticks(console):
        try:
            reply = await console.services.get(token, "sla-monitor", "/v1/me/leads", limit=200, **filters)
            if reply.status == 401:
                yield event("signout", "")
                return
            if not reply.ok:
                yield b""
                continue
            sig = views.queue_signature(reply.data)
            if sig == signature:
                yield b""
                continue
            if known is None or not known.knows(people=(i.get("rep_id") for i in reply.data)):
                known = await console.services.names(token)
            signature = sig
            items = [views.queue_item(i) for i in reply.data]
            yield event("queue", console.fragment("_queue_items.html", lang, items=items, reps=known.people))
        except Unavailable:
            yield event("offline", "")


async def alerts(console: Console, token: str, lang: str, since: str) -> AsyncIterator[bytes]:
    """New SLA breaches, newest first, as items to put on top of the feed."""
    newest = views.parse_time(since)
    sent: set[tuple[str, str, int]] = set()
    names: dict[str, dict[str, Any]] = {}
    known: Names | None = None
    first = True
    async for _ in _ticks(console):
        try:
            asked = views.iso(newest - ALERT_OVERLAP) if newest else None
            reply = await console.services.get(token, "sla-monitor", "/v1/alerts", since=asked, limit=200)
            if reply.status == 401:
                yield event("signout", "")
                return
            if not reply.ok:
                yield b""
                continue
            fresh = []
            for a in reply.data:
                key = (a["lead_id"], a["clock"], int(a["cycle"]))
                if key in sent:
                    continue
                sent.add(key)
                raised = views.parse_time(a["raised_at"])
                # What the page already showed when it opened: at or before its newest alert.
                if first and newest is not None and raised is not None and raised <= newest:
                    continue
                fresh.append(a)
            first = False
            for a in reply.data:
                raised = views.parse_time(a["raised_at"])
                if raised is not None and (newest is None or raised > newest):
                    newest = raised
            if not fresh:
                yield b""
                continue
            await console.services.lead_names(token, (a["lead_id"] for a in fresh), names)
            if known is None or not known.knows((a["rep_id"] for a in fresh), (a["territory"] for a in fresh)):
                known = await console.services.names(token)
            fragment = console.fragment(
                "_alert_items.html",
                lang,
                alerts=fresh,
                names=names,
                reps=known.people,
                territory_names=known.territories,
            )
            yield event("alerts", fragment)
        except Unavailable:
            yield event("offline", "")
