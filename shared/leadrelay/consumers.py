"""Which handler takes which event: a typed map, checked against the topics when it is built.

A service's consumer is three things: a *prefetch* that loads, in a few
queries, everything a batch of events needs and returns it as the service's own
typed batch object; a :class:`Handlers` map from each event type to the
function that handles it, given that batch and the event's payload; and the
event types the consumer knowingly ignores. The worker
(``leadrelay.worker``) runs them inside one unit of work per batch.

Every service's batch extends :class:`Batch`: the batch's unit of work, the rules in force,
and how the service stamps the events it emits; the service adds what its prefetch loaded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from leadrelay.events import EVENT_TYPES, Envelope, Event
from leadrelay.rules import Rules
from leadrelay.unit_of_work import UnitOfWork

B = TypeVar("B")
E = TypeVar("E", bound=Event)


@dataclass
class Batch:
    """What every handler of a batch gets; a service's batch extends it with what it loaded."""

    uow: UnitOfWork
    rules: Rules
    # The service's envelope for an event it emits (``ServiceContext.envelope``).
    envelope: Callable[..., Envelope]

    @property
    def now(self) -> datetime:
        return self.uow.now

    def emit(self, event: Event, event_id: str | None = None) -> None:
        """Write ``event`` to the outbox in the batch's unit of work."""
        self.uow.emit(self.envelope(event, event_id))


class Handlers(Generic[B]):
    """Event type -> handler ``(batch, event) -> None``, plus the types deliberately ignored."""

    def __init__(self, *, ignore: Iterable[type[Event]] = ()) -> None:
        self._handlers: dict[type[Event], Callable[[B, Any], Awaitable[None]]] = {}
        self.ignored: frozenset[type[Event]] = frozenset(ignore)

    def on(self, event_type: type[E], handler: Callable[[B, E], Awaitable[None]]) -> Handlers[B]:
        if event_type in self._handlers or event_type in self.ignored:
            raise ValueError(f"{event_type.__name__} is mapped twice")
        self._handlers[event_type] = handler
        return self

    def handler_for(self, envelope: Envelope) -> Callable[[B, Any], Awaitable[None]] | None:
        return self._handlers.get(type(envelope.data))

    @property
    def handled(self) -> frozenset[type[Event]]:
        return frozenset(self._handlers)

    def check_covers(self, topics: Sequence[str]) -> None:
        """Every event type published on ``topics`` must be handled or explicitly ignored: a new
        event type then fails at start-up, in the tests, instead of being skipped in silence."""
        on_topics = {model for model in EVENT_TYPES.values() if model.TOPIC in topics}
        missing = on_topics - self.handled - self.ignored
        if missing:
            names = ", ".join(sorted(m.TYPE for m in missing))
            raise ValueError(f"no handler and not ignored: {names} (on {', '.join(topics)})")
        stray = (self.handled | self.ignored) - on_topics
        if stray:
            names = ", ".join(sorted(m.TYPE for m in stray))
            raise ValueError(f"mapped but not published on {', '.join(topics)}: {names}")
