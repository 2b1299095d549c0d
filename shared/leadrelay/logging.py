"""Structured logs: JSON lines with stable event names and key-value fields.

``lead_id`` and ``event_id`` are bound with :func:`bind_event` (contextvars), so
every line logged while an event is handled carries them.

Nothing a client sends can forge a log line: the JSON renderer escapes every control
and non-ASCII character (``\\n``, ``\\u0000``, ``\\u202e``), and the console renderer
(``LEADRELAY_LOG_FORMAT=console``) writes every unprintable character (controls, bidi
and other formatting characters, line separators) as its escape; only a traceback keeps
its line breaks there. Libraries that log through the standard library (uvicorn,
aiokafka) go through the same renderer.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

_MULTILINE_KEYS = frozenset({"exception", "stack"})


def escape_unprintable(text: str, keep: str = "") -> str:
    """``text`` with every unprintable character but those in ``keep`` written as its Python escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def escape_controls(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Processor for the console renderer, which writes strings as they are (other values are
    written with ``repr``, which escapes them already)."""
    return {
        escape_unprintable(k): (
            escape_unprintable(v, keep="\n" if k in _MULTILINE_KEYS else "") if isinstance(v, str) else v
        )
        for k, v in event_dict.items()
    }


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    renderer: structlog.types.Processor
    escaping: list[structlog.types.Processor]
    if fmt == "json":
        renderer, escaping = structlog.processors.JSONRenderer(ensure_ascii=True), []
    else:
        renderer, escaping = structlog.dev.ConsoleRenderer(), [escape_controls]
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            *escaping,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries (aiokafka, uvicorn) log through the standard library: the same renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, timestamper],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                *escaping,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(logging.getLevelName(level), logging.WARNING))
    # A uvicorn started with its own logging config gives its loggers handlers of their own and
    # stops them propagating: their lines would skip the escaping. Every line goes through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        library = logging.getLogger(name)
        library.handlers = []
        library.propagate = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]


@contextmanager
def bind_event(lead_id: str | None, event_id: str | None) -> Iterator[None]:
    with structlog.contextvars.bound_contextvars(lead_id=lead_id, event_id=event_id):
        yield
