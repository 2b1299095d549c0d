"""Open-loop HTTP load: every request is sent at its scheduled time, whatever the ones before
it are doing, and its latency counts from that scheduled time (no coordinated omission).

A behaviour event waits for its lead's form to be accepted (so scoring sees them in
order); that wait, if any, counts in its latency too. A request waiting for a free
connection also counts: that is the queue an overloaded server builds. Bounded: one pass over a finite
schedule, every request under a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tqdm import tqdm

from bench.leads import Request

REQUEST_TIMEOUT = 60.0


@dataclass
class Result:
    request: Request
    scheduled: float  # wall clock (time.time()), seconds
    sent: float = 0.0
    done: float = 0.0
    status: int = 0  # 0: no answer (timeout or connection error)
    lead_id: str = ""
    event_id: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 202


class Clock:
    """Wall-clock seconds that never jump: time.time() at the start plus perf_counter since."""

    def __init__(self) -> None:
        self.wall0 = time.time()
        self.perf0 = time.perf_counter()

    def now(self) -> float:
        return self.wall0 + (time.perf_counter() - self.perf0)


class _Conn:
    """One keep-alive HTTP/1.1 connection: a minimal client, as the load must cost the client
    little CPU on a 2-core machine shared with the system under test (httpx's pool costs
    O(queued requests) per request, which melts down under an open-loop backlog)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(head + body)
        status_and_headers = await self.reader.readuntil(b"\r\n\r\n")
        lines = status_and_headers.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, payload


def encode(
    host: str, port: int, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[bytes, bytes]:
    data = json.dumps(body, ensure_ascii=False).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    return head, data


async def drive(
    base_url: str,
    requests: list[Request],
    clock: Clock,
    start: float,
    connections: int = 64,
    label: str = "load",
    progress: bool = True,
    headers: dict[str, str] | None = None,
) -> list[Result]:
    """Send ``requests`` (``at`` seconds after ``start``, a ``clock.now()`` value) over
    ``connections`` keep-alive connections; a request waits in a FIFO queue for a free one.
    ``headers`` go with behaviour events (the tracking source's API key); forms are public."""
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    results = [Result(r, start + r.at) for r in requests]
    encoded = [encode(host, port, r.path, r.body, headers if r.step > 0 else None) for r in requests]
    accepted: dict[int, asyncio.Event] = {r.lead: asyncio.Event() for r in requests if r.step == 0}
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    bar = tqdm(total=len(results), desc=label, unit="req", mininterval=1.0, disable=not progress, leave=False)
    deadline = start + (requests[-1].at if requests else 0) + 2 * REQUEST_TIMEOUT

    async def worker() -> None:
        conn = _Conn(host, port)
        try:
            while (i := await queue.get()) is not None:
                res = results[i]
                res.sent = clock.now()
                try:
                    if res.sent > deadline:
                        raise TimeoutError("not sent before the run's deadline")
                    status, payload = await asyncio.wait_for(conn.post(*encoded[i]), REQUEST_TIMEOUT)
                    res.done = clock.now()
                    res.status = status
                    if status == 202:
                        body = json.loads(payload)
                        res.lead_id, res.event_id = body["lead_id"], body["event_id"]
                    else:
                        res.error = payload[:200].decode(errors="replace")
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                    res.done = clock.now()
                    res.error = repr(exc)[:200]
                    await conn.close()
                if res.request.step == 0:
                    accepted[res.request.lead].set()
                bar.update(1)
        finally:
            await conn.close()

    async def after_form(i: int) -> None:
        req = results[i].request
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(accepted[req.lead].wait(), 2 * REQUEST_TIMEOUT)
        queue.put_nowait(i)

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    waiting = []
    for i, res in enumerate(results):
        delay = res.scheduled - clock.now()
        if delay > 0:
            await asyncio.sleep(delay)
        if res.request.step > 0 and res.request.lead in accepted and not accepted[res.request.lead].is_set():
            waiting.append(asyncio.create_task(after_form(i)))
        else:
            queue.put_nowait(i)
    await asyncio.gather(*waiting)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    bar.close()
    return results
