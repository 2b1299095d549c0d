"""A dependency (the database, the broker) that cannot take work now.

Raised wherever Leadrelay finds out (the database engine translates a refused or
timed-out connection and a lost server into it, the Kafka bus a producer that
cannot reach a broker); ``leadrelay.http`` answers it with 503, ``Retry-After``
and a body naming the dependency, and the consumers count it as transient and
retry. The names are the ones the API shows: ``postgresql``, ``sqlite``,
``kafka``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

# What a client is told to wait before retrying: a dependency back from a restart
# is usually reachable within seconds.
RETRY_AFTER_SECONDS = 2


class Unavailable(Exception):
    """``dependency`` cannot be reached now; the request may be retried after ``retry_after`` seconds."""

    def __init__(
        self, dependency: str, detail: str, retry_after: int = RETRY_AFTER_SECONDS, public: str | None = None
    ) -> None:
        super().__init__(detail)
        self.dependency = dependency
        self.detail = detail  # for the log: the error itself
        self.retry_after = retry_after
        self.public = public  # for the client, when the dependency's name does not say enough


async def within(seconds: float, call: Awaitable[T]) -> T:
    """``call``'s result, or TimeoutError after ``seconds``. Unlike ``asyncio.wait_for``, never waits
    for the cancelled call to finish: a client library call that swallows its cancellation (aiokafka's,
    with the broker gone) would hang ``wait_for`` for good. The call is cancelled and left behind."""
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        task.add_done_callback(_retrieve)
        raise TimeoutError(f"no answer within {seconds} s")
    return task.result()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], timeout: float = 10.0) -> set[asyncio.Future[Any]]:
    """Cancel ``tasks`` and wait until they have finished, cancelling again every second: a client
    library may swallow one cancellation (asyncpg in the middle of a query, aiokafka with the broker
    gone), and a single ``cancel()`` then ``gather()`` would wait for good. Returns the tasks still
    running after ``timeout`` (the caller says so and goes on); their exceptions are retrieved."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {t for t in tasks if not t.done()}
    while pending:
        left = deadline - loop.time()
        if left <= 0:
            break
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=min(1.0, left))
    for task in tasks:
        if task.done():
            _retrieve(task)
        else:
            task.add_done_callback(_retrieve)
    return pending
